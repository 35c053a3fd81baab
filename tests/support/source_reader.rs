//! Reading ringside's own sources as text, for `tests/layering.rs`: the
//! files of a folder, their code without comments or test modules, the
//! folders and files each one imports, and what lets a glommio type out
//! of `src/io/`. Nothing is built or parsed by rustc: the readers are
//! small and have their own tests in `layering.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every `.rs` file under `dir`, recursively.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
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
pub fn module_of(path: &Path) -> String {
    let relative = path.strip_prefix(Path::new(ROOT).join("src")).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

/// The code of a file without its comments, so that prose naming a
/// module is not taken for an import.
pub fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a piece of code names as `crate::NAME`.
pub fn crate_imports(code: &str) -> BTreeSet<String> {
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
pub fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
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
pub type ModPath = Vec<String>;

pub fn module_path(file: &Path) -> ModPath {
    let relative = file.strip_prefix(Path::new(ROOT).join("src")).unwrap();
    let parts = relative.with_extension("");
    let parts = parts.iter().map(|part| part.to_string_lossy().into_owned());
    parts.filter(|part| part != "mod").collect()
}

/// A whole test file (`tests.rs`, `identity_tests.rs`), declared by the
/// file it tests.
pub fn is_test_file(file: &Path) -> bool {
    let name = file.file_name().unwrap().to_string_lossy();
    name == "tests.rs" || name.ends_with("_tests.rs")
}

/// The code without its inline `#[cfg(test)] mod NAME { .. }` blocks.
pub fn without_test_modules(code: &str) -> String {
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
pub fn matching_brace(text: &str) -> usize {
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
pub fn use_tree(text: &str, at: &mut usize) -> Vec<Vec<String>> {
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
pub fn named_paths(code: &str) -> Vec<Vec<String>> {
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
pub fn reexports(
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
pub fn resolve(
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
pub fn file_graphs() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
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
pub fn file_circles() -> BTreeMap<String, Vec<String>> {
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

/// What in one file of `src/io/` lets a glommio type out of the folder: a
/// `pub use` of glommio, or a `pub`/`pub(crate)` item (alias, signature,
/// field) naming `glommio::` or a name the file took from glommio. Each
/// is given as the line it starts on. `pub(super)` and private items stay
/// inside `io/`, so they may name what they like.
pub fn glommio_exports(code: &str) -> Vec<String> {
    let code = without_test_modules(code);
    // The names this file took from glommio (an `as` name too).
    let mut taken = BTreeSet::new();
    for (at, found) in code.match_indices("use glommio::") {
        let end = code[at..].find(';').map_or(code.len(), |end| at + end);
        let tree = &code[at + found.len() - "glommio::".len()..end];
        for path in use_tree(tree, &mut 0) {
            taken.extend(path.last().cloned());
        }
        for (as_at, _) in tree.match_indices(" as ") {
            let name: String = tree[as_at + 4..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            taken.insert(name);
        }
    }
    let names_glommio = |item: &str| {
        item.contains("glommio::")
            || item
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|word| taken.contains(word))
    };
    let mut exports = Vec::new();
    for (at, _) in code.match_indices("pub") {
        let line_start = code[..at].rfind('\n').map_or(0, |n| n + 1);
        let outward = ["pub ", "pub(crate) "]
            .iter()
            .any(|start| code[at..].starts_with(start));
        if !outward || !code[line_start..at].trim().is_empty() {
            continue;
        }
        // The item's head: up to its body or its end; a field's, its line.
        let line_end = code[at..].find('\n').map_or(code.len(), |n| at + n);
        let head_end = code[at..].find(['{', ';']).map_or(code.len(), |n| at + n);
        let line = code[at..line_end].trim_end();
        let head = if line.ends_with(',') {
            line
        } else {
            &code[at..head_end]
        };
        if names_glommio(head) {
            exports.push(line.to_string());
        }
    }
    exports
}
