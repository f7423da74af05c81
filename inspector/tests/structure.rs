//! The inspector's structure, checked on its sources: no file over 700 lines of non-test code,
//! and the layering: each top-level module of `inspector/src`
//! may import (`crate::X`) only from modules of a lower layer, so there is no import cycle and
//! nothing reaches up (the debugger never imports the UI, the source layer never the debugger).
//! A new top-level module must be given its layer in `LAYERS` below.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers bottom up; modules on one line are side by side and must not import each other.
const LAYERS: &[&[&str]] = &[
    &["riscv", "rsp"],
    &["target"],
    &["dwarf"],
    &["model"],
    &["sites"],
    &["snapshot"],
    &["record"],
    &["source"],
    &["debugger"],
    &["serve"],
    &["tui"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The top-level modules that `source` names through `crate::`: `crate::a::b` gives `a`,
/// `crate::{a::x, b}` gives `a` and `b`.
fn crate_imports(source: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = source;
    while let Some(i) = rest.find("crate::") {
        // `inspector::crate::` cannot occur; a preceding identifier char means another word
        // (e.g. `mycrate::`).
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => return true,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    false
                })
                .map_or(group.len(), |(i, _)| i);
            for item in split_top_level(&group[..end]) {
                let ident: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !ident.is_empty() {
                    out.insert(ident);
                }
            }
        } else {
            let ident: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !ident.is_empty() {
                out.insert(ident);
            }
        }
    }
    out
}

/// Splits `a::{x, y}, b` at the commas outside braces.
fn split_top_level(group: &str) -> Vec<&str> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level module → the top-level modules it imports (itself excluded).
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src");
        let first = rel.components().next().expect("a path");
        let module = Path::new(first.as_os_str())
            .file_stem()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        if module == "lib" || module == "main" {
            continue; // the crate root declares the modules; main uses the library's API
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        let imports = graph.entry(module.clone()).or_default();
        imports.extend(crate_imports(&text).into_iter().filter(|m| *m != module));
    }
    graph
}

/// Every import that does not go to a lower layer, and every module without a layer.
fn violations(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (module, imports) in graph {
        let Some(own) = layer_of(module) else {
            out.push(format!(
                "module `{module}` has no layer in tests/structure.rs"
            ));
            continue;
        };
        for import in imports {
            match layer_of(import) {
                Some(l) if l < own => {}
                Some(_) => out.push(format!(
                    "`{module}` imports `{import}`, which is not in a lower layer"
                )),
                None => out.push(format!(
                    "`{module}` imports `{import}`, which has no layer in tests/structure.rs"
                )),
            }
        }
    }
    out
}

#[test]
fn top_level_modules_import_only_from_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph(&src);
    assert!(
        graph.contains_key("tui") && graph.contains_key("rsp"),
        "{graph:?}"
    );
    let bad = violations(&graph);
    assert!(bad.is_empty(), "layering broken:\n{}", bad.join("\n"));
}

#[test]
fn the_check_sees_grouped_imports_and_upward_edges() {
    let text = "use crate::{model::{Entry, Snapshot}, target::Target};\n\
                use crate::tui::App;\nlet x = mycrate::y; // not ours";
    let got = crate_imports(text);
    assert_eq!(
        got.into_iter().collect::<Vec<_>>(),
        ["model", "target", "tui"]
    );
    let mut graph = BTreeMap::new();
    graph.insert("debugger".to_string(), BTreeSet::from(["tui".to_string()]));
    graph.insert("tui".to_string(), BTreeSet::from(["debugger".to_string()]));
    graph.insert("widgets".to_string(), BTreeSet::new());
    let bad = violations(&graph);
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(bad[0].contains("`debugger` imports `tui`"), "{bad:?}");
    assert!(bad[1].contains("`widgets` has no layer"), "{bad:?}");
}

/// Most lines of code (before a file's first `#[cfg(test)]`) one source file may have.
const MAX_CODE_LINES: usize = 700;

/// Lines of non-test code in `text`: everything before the first `#[cfg(test)]` line; a file
/// that is all tests (`tests_*.rs`, `*_tests.rs`) counts as none.
fn code_lines(path: &Path, text: &str) -> usize {
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    if name.is_some_and(|n| n.starts_with("tests") || n.ends_with("_tests")) {
        return 0;
    }
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .count()
}

#[test]
fn no_source_file_has_over_700_lines_of_code() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = code_lines(f, &std::fs::read_to_string(f).expect("readable source"));
            (n > MAX_CODE_LINES).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these files (at most {MAX_CODE_LINES} lines of non-test code each):\n{}",
        long.join("\n")
    );
}

#[test]
fn test_code_does_not_count() {
    let text = "fn a() {}\nfn b() {}\n#[cfg(test)]\nmod tests {\n}\n";
    assert_eq!(code_lines(Path::new("x/app.rs"), text), 2);
    assert_eq!(code_lines(Path::new("x/tests_app.rs"), text), 0);
}
