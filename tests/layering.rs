//! The house stays as DESIGN.md draws it: imports between the folders of
//! `src/` run one way, no two files of a folder import each other in a
//! circle, glommio is named only in `runtime/` and `io/` and no glommio
//! type crosses `io/`, files stay small (tests and benches too), and test
//! helpers live in `tests/support/` only. Reads the sources as text
//! (`support::source_reader`): no build of anything else is needed.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use support::source_reader::*;

const MAX_LINES: usize = 600;

#[test]
fn folders_import_only_downwards() {
    let graph = import_graph();
    // `shard` sits between the protocols that use the shard's state
    // (proxy, http) and the pieces it holds (detect, tcp, tls, ...).
    let forbidden: &[(&str, &[&str])] = &[
        (
            "config",
            &[
                "admin", "balance", "detect", "http", "io", "iptables", "metrics", "proxy",
                "runtime", "shard", "stat", "tcp", "tls",
            ],
        ),
        (
            "tls",
            &[
                "tcp", "http", "proxy", "runtime", "admin", "detect", "shard",
            ],
        ),
        ("tcp", &["http", "proxy", "runtime", "admin", "shard"]),
        (
            "detect",
            &["tcp", "http", "proxy", "runtime", "admin", "shard"],
        ),
        ("shard", &["http", "proxy", "runtime", "admin"]),
        (
            "admin",
            &["http", "tcp", "proxy", "runtime", "detect", "shard"],
        ),
        (
            "metrics",
            &[
                "http", "tcp", "proxy", "runtime", "admin", "io", "detect", "shard",
            ],
        ),
        ("http", &["tcp", "proxy", "runtime", "admin", "detect"]),
        (
            "balance",
            &[
                "http", "tcp", "proxy", "runtime", "admin", "detect", "io", "shard",
            ],
        ),
        (
            "io",
            &[
                "http", "tcp", "proxy", "runtime", "admin", "detect", "balance", "shard",
            ],
        ),
        ("proxy", &["runtime", "admin"]),
        // A tool that reads /metrics as a user would: its settings only.
        (
            "stat",
            &[
                "admin", "balance", "detect", "dns", "http", "io", "iptables", "metrics", "proxy",
                "runtime", "shard", "tcp", "tls",
            ],
        ),
        // The control thread: Linkerd's clients, feeding tls and metrics;
        // discovery runs on it, never the other way.
        (
            "control",
            &[
                "http",
                "tcp",
                "proxy",
                "runtime",
                "admin",
                "detect",
                "shard",
                "io",
                "balance",
                "discovery",
            ],
        ),
        // The resolver thread knows only its settings and its counters.
        (
            "dns",
            &[
                "http", "tcp", "proxy", "runtime", "admin", "detect", "shard", "io", "balance",
                "tls",
            ],
        ),
        // The discovery thread knows its settings and the endpoint types;
        // the proxy asks it, never the other way.
        (
            "discovery",
            &[
                "http", "tcp", "proxy", "runtime", "admin", "detect", "shard", "io", "balance",
                "tls", "dns",
            ],
        ),
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

/// DESIGN.md: "only types of ours cross `io/`: no glommio type is
/// re-exported", so that the runtime stays replaceable. The test above
/// cannot see this: `io/` may name glommio, and a `pub use` there would
/// hand glommio's type to every folder without any of them naming it.
#[test]
fn no_glommio_type_crosses_io() {
    let mut leaks = Vec::new();
    for path in rust_files(&Path::new(ROOT).join("src/io")) {
        let text = code(&fs::read_to_string(&path).unwrap());
        for export in glommio_exports(&text) {
            leaks.push(format!("{}: {export}", path.display()));
        }
    }
    assert!(
        leaks.is_empty(),
        "glommio types let out of io/ (wrap them in a type of ours): {leaks:#?}"
    );
}

#[test]
fn the_glommio_reader_sees_what_it_should() {
    let source = "use glommio::net::{TcpStream, UdpSocket as Udp};\n\
                  use glommio::Task;\n\
                  pub use glommio::timer::Timer;\n\
                  pub(crate) type Stream = TcpStream;\n\
                  pub struct Socket {\n    pub inner: Udp,\n    pub(super) raw: TcpStream,\n    pub fd: i32,\n}\n\
                  pub fn spawn(task: Task<()>) {}\n\
                  pub fn connect(addr: SocketAddr) -> io::Result<Socket> {}\n\
                  pub(super) fn raw(s: &TcpStream) {}\n\
                  fn private(s: glommio::net::TcpStream) {}\n\
                  pub fn cell() -> glommio::channels::Sender<u8> {}\n\
                  #[cfg(test)]\nmod tests { pub fn t(s: TcpStream) {} }\n";
    assert_eq!(
        glommio_exports(source),
        [
            "pub use glommio::timer::Timer;",
            "pub(crate) type Stream = TcpStream;",
            "pub inner: Udp,",
            "pub fn spawn(task: Task<()>) {}",
            "pub fn cell() -> glommio::channels::Sender<u8> {}",
        ]
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

/// The 600-line rule covers the tests and the benchmarks too: a test
/// file is read as often as the code it checks.
#[test]
fn no_source_file_is_over_600_lines() {
    let long: Vec<String> = ["src", "tests", "benches"]
        .into_iter()
        .flat_map(|folder| rust_files(&Path::new(ROOT).join(folder)))
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
