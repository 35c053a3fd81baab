//! The house stays as DESIGN.md draws it: imports between the folders of
//! `src/` run one way, no two files of a folder import each other in a
//! circle, glommio is named only in `runtime/` and `io/`, files stay
//! small, and test helpers live in `tests/support/` only.
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

// Circles between the files of one folder. A file is a node; `mod.rs`
// is one too, but only as a target: that it declares and re-exports its
// children is how a folder is built, not an import, so its edges to them
// do not count. A child naming an item through `mod.rs` (`super::Config`,
// `crate::tls::TransportHeader`) imports the file that defines it: the
// child `mod.rs` re-exports it from, else `mod.rs` itself. A sub-folder
// is one node of its parent folder. Test modules do not count: a test may
// exercise its file together with the files built on it.

/// A module's path below the crate: `["http", "orig_proto", "upgrade"]`
/// for `src/http/orig_proto/upgrade.rs`, `["http"]` for `src/http/mod.rs`.
type ModPath = Vec<String>;

fn module_path(file: &Path) -> ModPath {
    let relative = file.strip_prefix(Path::new(ROOT).join("src")).unwrap();
    let parts = relative.with_extension("");
    let parts = parts.iter().map(|part| part.to_string_lossy().into_owned());
    parts.filter(|part| part != "mod").collect()
}

/// A whole test file (`tests.rs`, `identity_tests.rs`), declared by the
/// file it tests.
fn is_test_file(file: &Path) -> bool {
    let name = file.file_name().unwrap().to_string_lossy();
    name == "tests.rs" || name.ends_with("_tests.rs")
}

/// The code without its inline `#[cfg(test)] mod NAME { .. }` blocks.
fn without_test_modules(code: &str) -> String {
    let mut kept = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = &rest[at + "#[cfg(test)]".len()..];
        let item = after.trim_start();
        let opens = item.find('{');
        let is_inline_module =
            item.starts_with("mod ") && opens.is_some_and(|open| !item[..open].contains(';'));
        if !is_inline_module {
            kept.push_str(&rest[..at + "#[cfg(test)]".len()]);
            rest = after;
            continue;
        }
        kept.push_str(&rest[..at]);
        let body = &item[opens.unwrap()..];
        rest = &body[matching_brace(body)..];
    }
    kept.push_str(rest);
    kept
}

/// Where the block that `text` opens with `{` ends (just past its `}`);
/// braces in string and char literals are skipped.
fn matching_brace(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut at) = (0usize, 0usize);
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                at += 1;
                while at < bytes.len() && bytes[at] != b'"' {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' if bytes.get(at + 2) == Some(&b'\'') => at += 2,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return at + 1;
                }
            }
            _ => {}
        }
        at += 1;
    }
    bytes.len()
}

/// Reads a `use` tree (or a path in an expression) from `text`: the
/// paths it names, each as its segments, with `{a, b::{c, d}}` groups
/// expanded. A glob ends its path; `as` renames are skipped.
fn use_tree(text: &str, at: &mut usize) -> Vec<Vec<String>> {
    let skip_space = |at: &mut usize| {
        while text[*at..].starts_with(char::is_whitespace) {
            *at += text[*at..].chars().next().unwrap().len_utf8();
        }
    };
    let eat = |token: &str, at: &mut usize| {
        skip_space(at);
        let found = text[*at..].starts_with(token);
        if found {
            *at += token.len();
        }
        found
    };
    let mut prefix: Vec<String> = Vec::new();
    loop {
        if eat("{", at) {
            let mut paths = Vec::new();
            while !eat("}", at) {
                let before = *at;
                for tail in use_tree(text, at) {
                    paths.push(prefix.iter().cloned().chain(tail).collect());
                }
                if !eat(",", at) {
                    eat("}", at);
                    break;
                }
                if *at == before {
                    break;
                }
            }
            return paths;
        }
        if eat("*", at) {
            return vec![prefix];
        }
        skip_space(at);
        let ident: String = text[*at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            return vec![prefix];
        }
        *at += ident.len();
        prefix.push(ident);
        let mut probe = *at;
        if eat("as ", &mut probe) {
            skip_space(&mut probe);
            probe += text[probe..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .count();
            *at = probe;
            return vec![prefix];
        }
        if !eat("::", at) {
            return vec![prefix];
        }
    }
}

/// Every path that starts with `crate::`, `super::` or `self::` in the
/// code, from its first segment on.
fn named_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    for start in ["crate::", "super::", "self::"] {
        for (at, _) in code.match_indices(start) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            paths.extend(use_tree(code, &mut at.clone()));
        }
    }
    paths
}

/// What one folder's `mod.rs` (or a file with children) re-exports from
/// its children: item name → the child that defines it.
fn reexports(
    code: &str,
    module: &ModPath,
    modules: &BTreeSet<ModPath>,
) -> BTreeMap<String, ModPath> {
    let mut found = BTreeMap::new();
    for (at, _) in code.match_indices("pub use ") {
        for path in use_tree(code, &mut (at + "pub use ".len())) {
            let path: Vec<&String> = path.iter().filter(|seg| *seg != "self").collect();
            let (Some(first), Some(item)) = (path.first(), path.last()) else {
                continue;
            };
            let child: ModPath = module.iter().chain([*first]).cloned().collect();
            if path.len() > 1 && modules.contains(&child) {
                found.insert(item.to_string(), child);
            }
        }
    }
    found
}

/// The module a path names, seen from the module `from`: the deepest
/// module in it, or the child a module re-exports the named item from.
fn resolve(
    from: &ModPath,
    path: &[String],
    modules: &BTreeSet<ModPath>,
    reexported: &BTreeMap<ModPath, BTreeMap<String, ModPath>>,
) -> ModPath {
    let mut module = from.clone();
    for (i, seg) in path.iter().enumerate() {
        match seg.as_str() {
            "crate" if i == 0 => module.clear(),
            "super" => {
                module.pop();
            }
            "self" => {}
            name => {
                let child: ModPath = module.iter().cloned().chain([name.to_string()]).collect();
                if modules.contains(&child) {
                    module = child;
                    continue;
                }
                return reexported
                    .get(&module)
                    .and_then(|items| items.get(name))
                    .cloned()
                    .unwrap_or(module);
            }
        }
    }
    module
}

/// Folder (as `src/a/b`) → its files' imports of each other, by file
/// (or sub-folder) name, `mod` standing for its `mod.rs`.
fn file_graphs() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let files: Vec<PathBuf> = rust_files(&Path::new(ROOT).join("src"))
        .into_iter()
        .filter(|file| !is_test_file(file))
        .collect();
    let modules: BTreeSet<ModPath> = files.iter().map(|file| module_path(file)).collect();
    let codes: Vec<(ModPath, String)> = files
        .iter()
        .map(|file| {
            let text = fs::read_to_string(file).unwrap();
            (module_path(file), without_test_modules(&code(&text)))
        })
        .collect();
    let reexported = codes
        .iter()
        .map(|(module, code)| (module.clone(), reexports(code, module, &modules)))
        .collect();
    let mut graphs: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (from, code) in &codes {
        for path in named_paths(code) {
            let to = resolve(from, &path, &modules, &reexported);
            let shared = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            // Across top-level folders (the folder test's business), or a
            // folder's `mod.rs` naming what lies inside it.
            if shared == 0 || shared == from.len() {
                continue;
            }
            let node = |module: &ModPath| module.get(shared).cloned().unwrap_or("mod".into());
            let (a, b) = (node(from), node(&to));
            let folder = graphs.entry(format!("src/{}", from[..shared].join("/")));
            if a != b {
                folder.or_default().entry(a).or_default().insert(b);
            }
        }
    }
    graphs
}

/// Each set of files of a folder that import each other round in a
/// circle, as `src/config: file, merge`, with the edges among them.
fn file_circles() -> BTreeMap<String, Vec<String>> {
    let mut circles = BTreeMap::new();
    for (folder, graph) in file_graphs() {
        let reach = |start: &String| {
            let mut seen = BTreeSet::new();
            let mut todo = vec![start.clone()];
            while let Some(node) = todo.pop() {
                for next in graph.get(&node).into_iter().flatten() {
                    if seen.insert(next.clone()) {
                        todo.push(next.clone());
                    }
                }
            }
            seen
        };
        let mut placed = BTreeSet::new();
        for node in graph.keys() {
            if placed.contains(node) || !reach(node).contains(node) {
                continue;
            }
            let circle: BTreeSet<String> = reach(node)
                .into_iter()
                .filter(|other| reach(other).contains(node))
                .collect();
            let edges = circle
                .iter()
                .flat_map(|a| {
                    graph[a]
                        .iter()
                        .filter(|b| circle.contains(*b))
                        .map(move |b| format!("{a} -> {b}"))
                })
                .collect();
            let names = circle.iter().cloned().collect::<Vec<_>>().join(", ");
            circles.insert(format!("{folder}: {names}"), edges);
            placed.extend(circle);
        }
    }
    circles
}

#[test]
fn no_import_circles_between_files_of_a_folder() {
    let circles: Vec<String> = file_circles()
        .iter()
        .map(|(circle, edges)| format!("{circle} ({})", edges.join(", ")))
        .collect();
    assert!(
        circles.is_empty(),
        "import circles between files: {circles:#?}"
    );
}

#[test]
fn the_file_import_reader_sees_what_it_should() {
    let source = "use super::{file::{A, b}, Config,\n    route::*};\n\
                  let x = super::super::tcp::pump(crate::tls::Header);\n\
                  #[cfg(test)]\nmod tests { use super::merge; fn f() { let _ = '{'; } }\n\
                  use self::inner::Thing as Other;";
    let paths: Vec<String> = named_paths(&without_test_modules(source))
        .iter()
        .map(|path| path.join("::"))
        .collect();
    assert_eq!(
        paths,
        [
            "crate::tls::Header",
            "super::file::A",
            "super::file::b",
            "super::Config",
            "super::route",
            "super::super::tcp::pump",
            "self::inner::Thing",
        ]
    );
    let modules: BTreeSet<ModPath> = [vec!["tls"], vec!["tls", "mesh"], vec!["tls", "header"]]
        .into_iter()
        .map(|path| path.into_iter().map(String::from).collect())
        .collect();
    let tls: ModPath = vec!["tls".into()];
    let reexported = BTreeMap::from([(
        tls.clone(),
        reexports("pub use header::{Header, ALPN};", &tls, &modules),
    )]);
    let from: ModPath = vec!["tls".into(), "mesh".into()];
    let resolved = |path: &str| {
        let segments: Vec<String> = path.split("::").map(String::from).collect();
        resolve(&from, &segments, &modules, &reexported).join("::")
    };
    assert_eq!(resolved("super::Header"), "tls::header");
    assert_eq!(resolved("crate::tls::ALPN"), "tls::header");
    assert_eq!(resolved("super::Defined"), "tls");
    assert_eq!(resolved("crate::tls::header::read"), "tls::header");
}
