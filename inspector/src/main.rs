fn main() {
    eprintln!("inspector: not yet wired up");
    std::process::exit(2);
}
