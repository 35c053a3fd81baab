//! The house stays as DESIGN.md draws it: imports between the folders of
//! `src/` run one way, glommio is named only in `runtime/` and `io/`,
//! files stay small, and test helpers live in `tests/support/` only.
//! Reads the sources as text: no build of anything else is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const MAX_LINES: usize = 600;

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display())) {
        let path = entry.expect("a readable directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// The folder (top-level module) a source file belongs to: `tcp` for
/// `src/tcp/pump.rs`, `lib` for `src/lib.rs`.
fn module_of(path: &Path) -> String {
    let relative = path.strip_prefix(Path::new(ROOT).join("src")).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

/// The code of a file without its comments, so that prose naming a
/// module is not taken for an import.
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a piece of code names as `crate::NAME`.
fn crate_imports(code: &str) -> BTreeSet<String> {
    code.match_indices("crate::")
        .filter(|(at, _)| !code[..*at].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
        .map(|(at, _)| {
            code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// Folder → the other folders it imports.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in rust_files(&Path::new(ROOT).join("src")) {
        let module = module_of(&path);
        let text = fs::read_to_string(&path).unwrap();
        let imports = crate_imports(&code(&text));
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(imports.into_iter().filter(|name| *name != module));
    }
    graph
}

#[test]
fn folders_import_only_downwards() {
    let graph = import_graph();
    let forbidden: &[(&str, &[&str])] = &[
        (
            "config",
            &[
                "admin", "balance", "detect", "http", "io", "iptables", "metrics", "proxy",
                "runtime", "tcp", "tls",
            ],
        ),
        (
            "tls",
            &["tcp", "http", "proxy", "runtime", "admin", "detect"],
        ),
        ("tcp", &["http", "proxy", "runtime", "admin"]),
        ("detect", &["tcp", "http", "proxy", "runtime", "admin"]),
        ("admin", &["http", "tcp", "proxy", "runtime", "detect"]),
        (
            "metrics",
            &["http", "tcp", "proxy", "runtime", "admin", "io", "detect"],
        ),
        ("http", &["tcp", "proxy", "runtime", "admin", "detect"]),
        (
            "balance",
            &["http", "tcp", "proxy", "runtime", "admin", "detect", "io"],
        ),
        (
            "io",
            &[
                "http", "tcp", "proxy", "runtime", "admin", "detect", "balance",
            ],
        ),
        ("proxy", &["runtime", "admin"]),
    ];
    let mut broken = Vec::new();
    for (module, must_not) in forbidden {
        for name in graph.get(*module).into_iter().flatten() {
            if must_not.contains(&name.as_str()) {
                broken.push(format!("{module} imports {name}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the layering: {broken:?}"
    );
}

#[test]
fn no_import_circles_between_folders() {
    let graph = import_graph();
    /// Depth-first search; `path` is the chain of folders being visited.
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        module: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|seen| seen == module) {
            let mut circle = path[at..].to_vec();
            circle.push(module.to_string());
            return Some(circle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_string());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(circle) = visit(graph, next, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(module.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        let circle = visit(&graph, module, &mut Vec::new(), &mut done);
        assert!(
            circle.is_none(),
            "import circle: {}",
            circle.unwrap().join(" -> ")
        );
    }
}

#[test]
fn glommio_is_named_only_in_runtime_and_io() {
    let mut named = Vec::new();
    for path in rust_files(&Path::new(ROOT).join("src")) {
        let module = module_of(&path);
        if module == "runtime" || module == "io" {
            continue;
        }
        let text = code(&fs::read_to_string(&path).unwrap());
        if text.contains("glommio::") || text.contains("use glommio") {
            named.push(path.display().to_string());
        }
    }
    assert!(
        named.is_empty(),
        "glommio named outside runtime/ and io/: {named:?}"
    );
}

#[test]
fn the_connection_stage_the_io_layer_and_the_balancers_have_their_folders() {
    for folder in ["proxy", "io", "balance"] {
        let dir = Path::new(ROOT).join("src").join(folder);
        assert!(
            dir.join("mod.rs").is_file(),
            "src/{folder}/mod.rs is missing"
        );
    }
}

#[test]
fn no_source_file_is_over_600_lines() {
    let long: Vec<String> = rust_files(&Path::new(ROOT).join("src"))
        .into_iter()
        .filter_map(|path| {
            let lines = fs::read_to_string(&path).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these: {long:?}");
}

#[test]
fn test_helpers_live_in_tests_support_only() {
    let tests = Path::new(ROOT).join("tests");
    let mut copies = Vec::new();
    for path in rust_files(&tests) {
        if path.starts_with(tests.join("support")) {
            continue;
        }
        let text = code(&fs::read_to_string(&path).unwrap());
        if text.contains(concat!("fn ", "routing_to")) {
            copies.push(path.display().to_string());
        }
    }
    assert!(copies.is_empty(), "own copies of routing_to: {copies:?}");
}

#[test]
fn the_import_reader_sees_what_it_should() {
    let code = code("use crate::tcp::Socket;\n// crate::http in prose\nlet a = crate::io::spawn;");
    let names: Vec<String> = crate_imports(&code).into_iter().collect();
    assert_eq!(names, ["io", "tcp"]);
}
