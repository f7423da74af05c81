//! `sites`: names the code that allocated pages. Owns the symbolisation of the tracker's site
//! addresses (docs/tracker-abi.md: `site`, `user_site`, `user_program`) into [`Site`]s — kernel
//! sites from the kernel's DWARF, user sites from the program's own ELF — and the cache that
//! makes a repeated address cost one hash lookup (a full table read meets each site thousands
//! of times).
//!
//! Contracts:
//! - A kernel `site` is a return address: the line is looked up at `site - 1`, inside the call
//!   instruction, and named by the innermost (inlined) frame there: the line that called
//!   `alloc_pages`.
//! - A `user_site` is the pc of the program's `ecall`; the user runtime inlines its syscall
//!   wrappers, so the frames at that pc run from the wrapper out to the program's own code.
//!   The site is the frame that called `alloc_pages` (the caller of the outermost frame of that
//!   name), else the innermost frame.
//! - Program ELFs are found by name in the user directory: `$LEAKSCOPE_USER_DIR` when set (the
//!   variable `make kernel` builds the archive from), else `target/riscv64gc-unknown-none-elf/release`
//!   under the workspace root. They must keep their line tables (the archive in the kernel
//!   need not).
//! - The workspace root is the compilation directory of the kernel's own code (cargo compiles
//!   workspace members from the workspace root). Files inside it are named relative to it
//!   (`kernel/src/proc.rs`); others (the Rust library, registry crates) as DWARF names them.
//! - A program ELF is used only if it is the program packed in the kernel: the kernel exports
//!   its archive as `leakscope_user_archive`, and the file's loadable bytes must be the
//!   archive's copy (`kcore::archive::same_program`). A stale one (rebuilt since the kernel,
//!   or not rebuilt since) names no lines: its sites say so ([`stale_site`]). A kernel without
//!   the symbol (older) is not checked.
//! - An address that cannot be named still gives a site, so that grouping by site keeps the
//!   pages: function = the ELF symbol or the address in hex, file = the program's name (user)
//!   or "" (kernel), line 0.

use crate::dwarf::{DebugInfo, Frame};
use crate::model::Site;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where `make user` leaves the user programs, relative to the workspace root.
pub const USER_TARGET_DIR: &str = "target/riscv64gc-unknown-none-elf/release";
/// Overrides the directory the user programs' ELFs are read from.
pub const USER_DIR_ENV: &str = "LEAKSCOPE_USER_DIR";

/// Most distinct site records kept named (a kernel has a few dozen sites, its programs a few
/// each).
const MAX_CACHED: usize = 1 << 16;

/// The raw site fields of one record: (`site`, `user_site`, `user_program` pointer, its length).
/// Records with equal keys name the same sites (the program name is a `&'static str` of the
/// kernel's program archive, so its pointer tells programs apart).
pub type RawSites = (u64, u64, u64, u64);

/// The named sites of one record: (kernel site, user site).
pub type Named = (Option<Arc<Site>>, Option<Arc<Site>>);

/// Names site addresses, once each.
pub struct SiteNames {
    kernel: Arc<DebugInfo>,
    root: Option<PathBuf>,
    user_dir: Option<PathBuf>,
    /// Program ELFs by name (looked at once each).
    programs: HashMap<String, Program>,
    /// The kernel's program archive (`leakscope_user_archive`), read on first use; `None`
    /// inside: the kernel has none to compare with.
    archive: Option<Option<Vec<u8>>>,
    cache: HashMap<RawSites, Named, BuildHasherDefault<AddressHasher>>,
}

impl SiteNames {
    /// Names sites of the kernel `kernel`; the workspace root and the user directory follow
    /// from its DWARF (module doc).
    pub fn new(kernel: Arc<DebugInfo>) -> SiteNames {
        let root = kernel_root(&kernel);
        let user_dir = std::env::var_os(USER_DIR_ENV)
            .map(PathBuf::from)
            .or_else(|| root.as_ref().map(|r| r.join(USER_TARGET_DIR)));
        SiteNames {
            kernel,
            root,
            user_dir,
            programs: HashMap::new(),
            archive: None,
            cache: HashMap::default(),
        }
    }

    /// Reads the programs' ELFs from `dir` instead.
    pub fn with_user_dir(mut self, dir: impl Into<PathBuf>) -> SiteNames {
        self.user_dir = Some(dir.into());
        self.programs.clear();
        self.cache.clear();
        self
    }

    /// The workspace root file names are made relative to, if the kernel's DWARF says.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// The names for `raw` if already known: the hot path, one hash lookup.
    pub fn cached(&self, raw: &RawSites) -> Option<Named> {
        self.cache.get(raw).cloned()
    }

    /// Names `raw`, whose `user_program` string is `program`, and remembers the result.
    pub fn resolve(&mut self, raw: RawSites, program: &str) -> Named {
        let (site, user_site, _, _) = raw;
        let kernel = (site != 0).then(|| Arc::new(self.kernel_site(site)));
        let user = (user_site != 0).then(|| Arc::new(self.user_site(program, user_site)));
        let named = (kernel, user);
        // Bounded: a torn read (RAM file, retried) may name an address no record holds.
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
        }
        self.cache.insert(raw, named.clone());
        named
    }

    /// The kernel line that called `alloc_pages` and returns to `ret`.
    fn kernel_site(&self, ret: u64) -> Site {
        let pc = ret.wrapping_sub(1);
        let frames = self.kernel.frames(pc).unwrap_or_default();
        frames
            .first()
            .and_then(|f| site_of(f, self.root.as_deref()))
            .unwrap_or_else(|| unnamed(&self.kernel, pc, ""))
    }

    /// The line of `program` that asked for pages with the `ecall` at `pc`.
    fn user_site(&mut self, program: &str, pc: u64) -> Site {
        let root = self.root.clone();
        match self.program(program) {
            Program::Named(elf) => {
                let frames = elf.frames(pc).unwrap_or_default();
                user_frame(&frames)
                    .and_then(|f| site_of(f, root.as_deref()))
                    .unwrap_or_else(|| unnamed(&elf, pc, program))
            }
            Program::Stale(path) => stale_site(program, pc, &path),
            Program::Missing => Site {
                function: format!("{pc:#x}"),
                file: program.to_string(),
                line: 0,
            },
        }
    }

    /// The ELF of `program`, looked at on first use.
    fn program(&mut self, program: &str) -> Program {
        if let Some(p) = self.programs.get(program) {
            return p.clone();
        }
        // A name is a file name in the user directory, never a path.
        let path = self
            .user_dir
            .as_ref()
            .filter(|_| is_plain_name(program))
            .map(|dir| dir.join(program));
        let found = match path {
            None => Program::Missing,
            Some(path) => match self.archived(program) {
                Some(Some(kept)) => match std::fs::read(&path) {
                    Ok(file) if !kcore::archive::same_program(&kept, &file) => Program::Stale(path),
                    Ok(_) => load(&path),
                    Err(_) => Program::Missing,
                },
                // Not in the archive: the kernel cannot have run it; nothing to check against.
                Some(None) | None => load(&path),
            },
        };
        self.programs.insert(program.to_string(), found.clone());
        found
    }

    /// `program`'s bytes in the kernel's archive: `None` when the kernel has no archive symbol
    /// (nothing to compare with), `Some(None)` when the archive lacks the program.
    fn archived(&mut self, program: &str) -> Option<Option<Vec<u8>>> {
        let kernel = &self.kernel;
        let archive = self.archive.get_or_insert_with(|| {
            let sym = kernel.elf().find_symbol(ARCHIVE_SYMBOL)?;
            let mut bytes = vec![0; usize::try_from(sym.size).ok()?];
            kernel
                .elf()
                .read_static(sym.address, &mut bytes)
                .then_some(bytes)
        });
        let parsed = kcore::archive::Archive::parse(archive.as_ref()?).ok()?;
        Some(parsed.find(program).map(<[u8]>::to_vec))
    }
}

/// The kernel's symbol for its program archive (`kernel/src/archive.rs`).
pub const ARCHIVE_SYMBOL: &str = "leakscope_user_archive";

/// A program's ELF, as found in the user directory.
#[derive(Clone)]
enum Program {
    /// The program the kernel runs, with its line tables.
    Named(Arc<DebugInfo>),
    /// The file at this path is not the program in the kernel's archive.
    Stale(PathBuf),
    /// Not there, or not readable as an ELF with DWARF.
    Missing,
}

fn load(path: &Path) -> Program {
    DebugInfo::load(path).map_or(Program::Missing, |d| Program::Named(Arc::new(d)))
}

/// The site of `pc` in `program` whose ELF at `path` is not the one in the kernel: no line (the
/// file's lines would name the wrong code), and a function that says why and what to do.
pub fn stale_site(program: &str, pc: u64, path: &Path) -> Site {
    Site {
        function: format!(
            "{pc:#x} (stale ELF: {} is not the {program} in the kernel; rebuild both with make kernel)",
            path.display()
        ),
        file: program.to_string(),
        line: 0,
    }
}

/// The frame that names a user site among `frames` (innermost first): the caller of the
/// outermost `alloc_pages` frame, else the innermost frame.
pub fn user_frame(frames: &[Frame]) -> Option<&Frame> {
    let wrapper = frames
        .iter()
        .rposition(|f| f.function.as_deref().map(short_name) == Some("alloc_pages"));
    match wrapper {
        Some(i) if i + 1 < frames.len() => frames.get(i + 1),
        _ => frames.first(),
    }
}

/// A frame as a site, its file relative to `root` when inside it; `None` without a location.
pub fn site_of(frame: &Frame, root: Option<&Path>) -> Option<Site> {
    let loc = frame.location.as_ref()?;
    Some(Site {
        function: frame
            .function
            .as_deref()
            .map(short_name)
            .unwrap_or("?")
            .to_string(),
        file: relative_path(&loc.file, root),
        line: loc.line,
    })
}

/// `file` relative to `root` when it lies inside it, else unchanged.
pub fn relative_path(file: &str, root: Option<&Path>) -> String {
    root.and_then(|r| Path::new(file).strip_prefix(r).ok())
        .filter(|rel| !rel.as_os_str().is_empty())
        .map(|rel| rel.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.to_string())
}

/// The last path segment of a demangled name, outside generic arguments:
/// `kernel::mm::vm::walk` → `walk`, `<a::B as c::D>::fmt` → `fmt`, `f<x::Y>` → `f<x::Y>`.
pub fn short_name(name: &str) -> &str {
    let (mut depth, mut start) = (0i32, 0);
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => depth += 1,
            b'>' => depth -= 1,
            b':' if depth == 0 && bytes.get(i + 1) == Some(&b':') => {
                start = i + 2;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    &name[start..]
}

/// A site for an address without a line: the ELF symbol there, else the address.
fn unnamed(elf: &DebugInfo, pc: u64, file: &str) -> Site {
    Site {
        function: elf
            .elf()
            .symbol_at(pc)
            .map_or_else(|| format!("{pc:#x}"), |s| s.name.clone()),
        file: file.to_string(),
        line: 0,
    }
}

/// The compilation directory of the kernel's own code: that of the unit holding the tracker's
/// `track_alloc` (always the kernel's crate), else of the unit at the ELF's first function.
pub fn kernel_root(kernel: &DebugInfo) -> Option<PathBuf> {
    let probe = kernel
        .function("track_alloc")
        .ok()
        .map(|f| f.low)
        .or_else(|| kernel.functions().first().map(|f| f.low_pc))?;
    kernel.comp_dir_at(probe)
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// A hasher for keys of a few addresses: one multiply per word (the site cache is hit for
/// every entry of a full table read; SipHash would be most of its cost).
#[derive(Default)]
pub struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dwarf::SourceLocation;

    fn frame(function: &str, file: &str, line: u32) -> Frame {
        Frame {
            function: Some(function.to_string()),
            location: Some(SourceLocation {
                file: file.to_string(),
                line,
                column: None,
            }),
            inlined: true,
        }
    }

    #[test]
    fn files_inside_the_workspace_are_named_relative_to_it() {
        let root = Some(Path::new("/work/main"));
        assert_eq!(
            relative_path("/work/main/kernel/src/proc.rs", root),
            "kernel/src/proc.rs"
        );
        // Outside the root (the Rust library), or a mere name prefix: unchanged.
        let core = "/rustc/5980/library/core/src/fmt/mod.rs";
        assert_eq!(relative_path(core, root), core);
        assert_eq!(
            relative_path("/work/mainly/x.rs", root),
            "/work/mainly/x.rs"
        );
        assert_eq!(relative_path("/work/main/a.rs", None), "/work/main/a.rs");
    }

    #[test]
    fn short_names_drop_the_path_outside_generics() {
        assert_eq!(short_name("kernel::mm::vm::walk"), "walk");
        assert_eq!(short_name("main"), "main");
        assert_eq!(short_name("<kernel::X as core::fmt::Display>::fmt"), "fmt");
        assert_eq!(
            short_name("kernel::with<tracker::Tracker>"),
            "with<tracker::Tracker>"
        );
    }

    #[test]
    fn the_user_site_is_the_caller_of_the_alloc_pages_wrapper() {
        // As addr2line gives them at leak's ecall: innermost first.
        let frames = [
            frame("user::syscall", "/w/kernel/user/src/lib.rs", 22),
            frame("user::alloc_pages", "/w/kernel/user/src/lib.rs", 109),
            frame("leak::main", "/w/kernel/user/src/bin/leak.rs", 21),
            frame("_start", "/w/kernel/user/src/lib.rs", 327),
        ];
        let site = site_of(user_frame(&frames).unwrap(), Some(Path::new("/w"))).unwrap();
        assert_eq!(
            site,
            Site {
                function: "main".into(),
                file: "kernel/user/src/bin/leak.rs".into(),
                line: 21
            }
        );
        assert_eq!(site.to_string(), "kernel/user/src/bin/leak.rs:21 main");
        // No wrapper among the frames (a program calling ecall itself): the innermost frame.
        let bare = [frame("raw::main", "/w/raw.rs", 5)];
        assert_eq!(
            user_frame(&bare).unwrap().location.as_ref().unwrap().line,
            5
        );
        // The wrapper outermost (not inlined into its caller): nothing better than it.
        let alone = [frame("user::alloc_pages", "/w/lib.rs", 109)];
        assert_eq!(
            user_frame(&alone).unwrap().location.as_ref().unwrap().line,
            109
        );
        assert!(user_frame(&[]).is_none());
    }

    #[test]
    fn program_names_are_file_names_never_paths() {
        assert!(is_plain_name("leak"));
        for bad in ["", ".", "..", "../leak", "a/b", "/etc/passwd"] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }
}
