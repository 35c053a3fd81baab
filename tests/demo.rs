//! `ringside demo`, run as a user runs it (on ports the kernel picks): its
//! traffic ends with every byte checked, both proxies' tables show the
//! mesh (`tls` true, the client's identity inbound and the server's
//! outbound), and SIGINT drains it to exit 0 with neither proxy nor the
//! identity directory left behind.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::output::Output;
use support::{BIN, WAIT_STEP};

const CLIENT: &str = "web.demo.serviceaccount.identity.linkerd.cluster.local";
const SERVER: &str = "api.demo.serviceaccount.identity.linkerd.cluster.local";

/// The demo's start and traffic take about 5 s in a debug build; this
/// leaves room for a loaded machine.
const DEMO_LIMIT: Duration = Duration::from_secs(90);

#[test]
fn the_demo_checks_every_byte_shows_the_mesh_and_exits_0_on_sigint() {
    let mut demo = Command::new(BIN)
        .args(["demo", "--ephemeral-ports"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut output = Output::follow(demo.stdout.take().unwrap());
    let printed = output.until("Stop with Ctrl-C", DEMO_LIMIT);
    let text = printed.join("\n");
    let done = printed.iter().find(|line| line.contains("traffic done"));
    let done = done.unwrap_or_else(|| panic!("no traffic done line:\n{text}"));
    assert!(
        done.contains("every one checked") && done.contains("no mismatch"),
        "{done}"
    );

    // Each table: a header line, then rows; the rows of interest are the
    // ones of the demo's authority.
    let outbound = row(&printed, "outbound");
    assert!(outbound.tls.contains(&"true".to_string()), "{text}");
    assert_eq!(outbound.identity, SERVER, "{text}");
    let inbound = row(&printed, "inbound");
    assert!(inbound.tls.contains(&"true".to_string()), "{text}");
    assert_eq!(inbound.identity, CLIENT, "{text}");

    let dir = after(&printed, "identities minted into ");
    assert!(Path::new(&dir).is_dir(), "{dir}");
    let outbound_addr: SocketAddr = after(&printed, "outbound ").parse().unwrap();
    // The two proxies, and nothing else, are the demo's children.
    let proxies: Vec<u32> = printed
        .iter()
        .filter_map(|line| line.split(", pid ").nth(1))
        .map(|rest| rest.split(':').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(proxies.len(), 2, "{text}");
    let mut children = children_of(demo.id());
    children.sort();
    let mut expected = proxies.clone();
    expected.sort();
    assert_eq!(children, expected);

    let status = Command::new("kill")
        .args(["-INT", &demo.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + DEMO_LIMIT;
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not exit after SIGINT"
        );
        std::thread::sleep(WAIT_STEP);
    };
    assert!(status.success(), "{status}");
    output.until("both proxies drained and exited 0", DEMO_LIMIT);
    assert!(!Path::new(&dir).exists(), "{dir} left behind");
    for pid in proxies {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        assert!(
            !cmdline.contains(&dir),
            "proxy {pid} left running: {cmdline}"
        );
    }
    assert!(
        TcpStream::connect(outbound_addr).is_err(),
        "proxy A still listens"
    );
}

/// One row of a printed stat table (`-o wide`).
struct Row {
    tls: Vec<String>,
    identity: String,
}

/// The row of `direction` for the demo's authority, read by the table's
/// own header, so that a column added later does not break the test.
fn row(printed: &[String], direction: &str) -> Row {
    let text = printed.join("\n");
    let at = printed
        .iter()
        .position(|line| line.starts_with(direction) && line.contains("api.demo.svc"));
    let at = at.unwrap_or_else(|| panic!("no {direction} row:\n{text}"));
    let header = printed[..at]
        .iter()
        .rev()
        .find(|line| line.starts_with("DIRECTION"))
        .unwrap_or_else(|| panic!("no header above the {direction} row:\n{text}"));
    let columns: Vec<&str> = header.split_whitespace().collect();
    let cells: Vec<&str> = printed[at].split_whitespace().collect();
    assert_eq!(columns.len(), cells.len(), "{header}\n{}", printed[at]);
    let cell = |name: &str| cells[columns.iter().position(|c| *c == name).unwrap()];
    Row {
        tls: cell("TLS").split(',').map(str::to_string).collect(),
        identity: cell("IDENTITY").to_string(),
    }
}

/// The word that follows `prefix` on the first line holding it.
fn after(printed: &[String], prefix: &str) -> String {
    let line = printed.iter().find_map(|line| line.split_once(prefix));
    let (_, rest) = line.unwrap_or_else(|| panic!("no {prefix:?} in:\n{}", printed.join("\n")));
    let word = rest.split([' ', ',']).next().unwrap();
    word.to_string()
}

/// The processes whose parent is `pid`, from `/proc/*/stat`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name (field 2) may hold spaces; the parent's pid is
        // the second field after the ')' that ends it.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let parent = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if parent == Some(pid) {
            children.push(entry.file_name().to_string_lossy().parse().unwrap());
        }
    }
    children
}
