//! Links the user programs at USER_BASE (user.ld) when building for riscv64.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    if std::env::var("TARGET")
        .unwrap_or_default()
        .starts_with("riscv64")
    {
        println!("cargo:rustc-link-arg-bins=-T{dir}/user.ld");
    }
    println!("cargo:rerun-if-changed=user.ld");
    println!("cargo:rerun-if-changed=build.rs");
}
