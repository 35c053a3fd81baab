//! `ringside iptables` against real tables: each test makes a network
//! namespace of its own, runs the built binary inside it, and reads the
//! tables back with `iptables-save`, as a user checking the rules would.
//! They need root, iproute2 and iptables; without them they print a
//! `SKIP:` line saying what is missing (on stderr, past the harness's
//! capture), and pass.

mod support;

use std::io::{ErrorKind, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use support::netns::{LinkedPods, Netns, POD_B, POD_B_V6};
use support::{eventually, TempDir, TempPath, BIN};

/// A namespace for this test, or `None` after a SKIP line saying why not.
fn namespace(tag: &str) -> Option<Netns> {
    match Netns::create(tag) {
        Ok(netns) => Some(netns),
        Err(reason) => {
            skip(&reason);
            None
        }
    }
}

/// Says why a test did not run, straight to stderr: the harness would
/// hide a `println!` of a passing test.
fn skip(reason: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
}

/// The nat table as `save` prints it, without its comment lines (which
/// carry the time it was saved).
fn nat_table(netns: &Netns, save: &str) -> String {
    let text = netns.run(save, &["-t", "nat"]);
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Install twice, add a rule of our own, remove: for one family and
/// mode, whose `save` program must work in the namespace.
fn install_is_idempotent_and_remove_leaves_the_rest(family: &str, mode: &str) {
    let Some(netns) = namespace(&format!("{family}-{mode}")) else {
        return;
    };
    let (save, tables, loopback) = match family {
        "ipv4" => (format!("iptables-{mode}-save"), "iptables", "127.0.0.0/8"),
        _ => (format!("ip6tables-{mode}-save"), "ip6tables", "::1/128"),
    };
    let probe = netns.exec(&save, &["-t", "nat"]);
    if !probe.status.success() {
        let why = String::from_utf8_lossy(&probe.stderr);
        skip(&format!("{save} does not work here: {}", why.trim()));
        return;
    }
    let before = nat_table(&netns, &save);
    let install = [
        "iptables",
        "install",
        "--iptables-mode",
        mode,
        "--proxy-uid",
        "2102",
        "--skip-inbound-ports",
        "9999",
        "--skip-outbound-ports",
        "25,443",
    ];

    netns.run(BIN, &install);
    let installed = nat_table(&netns, &save);
    for rule in [
        ":RINGSIDE_PREROUTING - [0:0]",
        ":RINGSIDE_OUTPUT - [0:0]",
        "-A PREROUTING -j RINGSIDE_PREROUTING",
        "-A OUTPUT -j RINGSIDE_OUTPUT",
        "-A RINGSIDE_PREROUTING -p tcp -m multiport --dports 4140,4143,4191,9999 -j RETURN",
        "-A RINGSIDE_PREROUTING -p tcp -j REDIRECT --to-ports 4143",
        "-A RINGSIDE_OUTPUT -m owner --uid-owner 2102 -j RETURN",
        "-A RINGSIDE_OUTPUT -o lo -j RETURN",
        &format!("-A RINGSIDE_OUTPUT -d {loopback} -j RETURN"),
        "-A RINGSIDE_OUTPUT -p tcp -m multiport --dports 25,443 -j RETURN",
        "-A RINGSIDE_OUTPUT -p tcp -j REDIRECT --to-ports 4140",
    ] {
        assert!(
            installed.lines().any(|line| line == rule),
            "{family} {mode}: no {rule:?} in\n{installed}"
        );
    }

    netns.run(BIN, &install);
    assert_eq!(
        nat_table(&netns, &save),
        installed,
        "{family} {mode}: a second install changed the table"
    );

    let unrelated = "-A OUTPUT -p tcp -m tcp --dport 7 -j ACCEPT";
    let mut args = vec!["-t", "nat"];
    args.extend(unrelated.split(' '));
    netns.run(&format!("{tables}-{mode}"), &args);
    netns.run(BIN, &["iptables", "remove", "--iptables-mode", mode]);
    let expected = before.replace("COMMIT\n", &format!("{unrelated}\nCOMMIT\n"));
    assert_eq!(
        nat_table(&netns, &save),
        expected,
        "{family} {mode}: remove left more or less than the unrelated rule"
    );
}

#[test]
fn ipv4_nft_rules_install_once_and_remove_cleanly() {
    install_is_idempotent_and_remove_leaves_the_rest("ipv4", "nft");
}

#[test]
fn ipv6_nft_rules_install_once_and_remove_cleanly() {
    install_is_idempotent_and_remove_leaves_the_rest("ipv6", "nft");
}

#[test]
fn ipv4_legacy_rules_install_once_and_remove_cleanly() {
    install_is_idempotent_and_remove_leaves_the_rest("ipv4", "legacy");
}

/// Two pods joined by a veth pair (`LinkedPods`), rules installed in the
/// first: a connection to the other pod lands on the first pod's outbound
/// listener, and one to a skipped port reaches the other pod's server
/// directly. `server` is the second pod's address, `loopback` where
/// REDIRECT sends the family.
fn outbound_is_redirected_and_skipped_ports_are_not(test: &str, server: &str, loopback: &str) {
    let tag = if server.contains(':') { "6" } else { "4" };
    let Some(pods) = LinkedPods::create(test, tag) else {
        return;
    };
    let (client_pod, server_pod) = (&pods.a, &pods.b);

    let server_ip: IpAddr = server.parse().unwrap();
    let server = server_pod.enter(|| TcpListener::bind((server_ip, 0)).unwrap());
    let skipped = server.local_addr().unwrap();
    let loopback: IpAddr = loopback.parse().unwrap();
    let outbound = client_pod.enter(|| TcpListener::bind((loopback, 0)).unwrap());
    let outbound_port = outbound.local_addr().unwrap().port().to_string();
    // The test runs as root: a proxy uid other than 0 leaves its own
    // connections to the rules.
    client_pod.run(
        BIN,
        &[
            "iptables",
            "install",
            "--proxy-uid",
            "65534",
            "--outbound-port",
            &outbound_port,
            "--skip-outbound-ports",
            &skipped.port().to_string(),
        ],
    );

    let redirected = SocketAddr::new(skipped.ip(), 9);
    let (to_skipped, to_redirected) = client_pod.enter(|| {
        let connect = |addr| TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
        (connect(skipped), connect(redirected))
    });
    assert_eq!(
        accept(&server).peer_addr().unwrap(),
        to_skipped.local_addr().unwrap(),
        "the skipped port's connection reached the server directly"
    );
    assert_eq!(
        accept(&outbound).peer_addr().unwrap(),
        to_redirected.local_addr().unwrap(),
        "the connection to {redirected} landed on the outbound listener"
    );
    // The redirected client still believes it talks to the other pod.
    assert_eq!(to_redirected.peer_addr().unwrap(), redirected);
}

#[test]
fn ipv4_outbound_lands_on_the_outbound_port_and_skipped_ports_do_not() {
    let test = "ipv4_outbound_lands_on_the_outbound_port_and_skipped_ports_do_not";
    outbound_is_redirected_and_skipped_ports_are_not(test, POD_B, "127.0.0.1");
}

#[test]
fn ipv6_outbound_lands_on_the_outbound_port_and_skipped_ports_do_not() {
    if !std::path::Path::new("/proc/net/if_inet6").exists() {
        skip("the kernel has no IPv6");
        return;
    }
    let test = "ipv6_outbound_lands_on_the_outbound_port_and_skipped_ports_do_not";
    outbound_is_redirected_and_skipped_ports_are_not(test, POD_B_V6, "::1");
}

/// A directory holding `ip6tables-nft-save` and `-restore` that fail as
/// on a machine whose kernel has no IPv6 nat table, to put first in PATH.
fn failing_ip6tables() -> TempDir {
    let dir = TempDir::new();
    let script = "#!/bin/sh\necho \"ip6tables-nft: can't initialize ip6tables table \\`nat': \
                  Table does not exist\" >&2\nexit 1\n";
    for verb in ["save", "restore"] {
        let path = dir.join(&format!("ip6tables-nft-{verb}"));
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// An IPv6 failure is an error that changes nothing, IPv4 included, since
/// a dual-stack pod would be open over IPv6; `--no-ipv6` says IPv6 is
/// not wanted, and then IPv4 alone is installed.
#[test]
fn an_ipv6_failure_fails_install_unless_ipv6_is_turned_off() {
    let Some(netns) = namespace("ip6-fails") else {
        return;
    };
    if !netns
        .exec("iptables-nft-save", &["-t", "nat"])
        .status
        .success()
    {
        skip("iptables-nft-save does not work here");
        return;
    }
    let fakes = failing_ip6tables();
    let path = format!(
        "PATH={}:{}",
        fakes.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let install = ["iptables", "install", "--proxy-uid", "2102"];
    let out = netns.exec("env", &[&[path.as_str(), BIN][..], &install].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("ringside: IPv6: ") && last.contains("--no-ipv6"),
        "{stderr}"
    );
    let table = nat_table(&netns, "iptables-nft-save");
    assert!(!table.contains("RINGSIDE"), "IPv4 changed too:\n{table}");

    let off = [&[path.as_str(), BIN][..], &install, &["--no-ipv6"]].concat();
    let out = netns.exec("env", &off);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("--no-ipv6"),
        "says IPv6 was left alone: {stderr}"
    );
    let table = nat_table(&netns, "iptables-nft-save");
    assert!(table.contains("-A OUTPUT -j RINGSIDE_OUTPUT"), "{table}");
}

/// The next connection on `listener`, waited for within the test limit.
fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let mut accepted = None;
    eventually("a connection on the listener", || match listener.accept() {
        Ok((stream, _)) => {
            accepted = Some(stream);
            true
        }
        Err(err) if err.kind() == ErrorKind::WouldBlock => false,
        Err(err) => panic!("accept: {err}"),
    });
    accepted.unwrap()
}

#[test]
fn print_without_a_proxy_uid_is_a_one_line_error() {
    let out = std::process::Command::new(BIN)
        .args(["iptables", "print"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--proxy-uid: required"), "{stderr}");
}

/// Without the rights to change the tables, install fails with the
/// one line iptables gave, and leaves the tables as they were.
#[test]
fn install_without_root_is_a_one_line_error() {
    let Some(netns) = namespace("unprivileged") else {
        return;
    };
    // A copy in the temp dir, which every user may reach, wherever the
    // build is.
    let bin = TempPath::holding(std::fs::read(BIN).unwrap());
    std::fs::set_permissions(bin.as_str(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let args = [
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        bin.as_str(),
        "iptables",
        "install",
        "--proxy-uid",
        "2102",
    ];
    // A fork elsewhere in this process may briefly hold the copy open for
    // writing (ETXTBSY); that passes at once.
    let mut out = netns.exec("setpriv", &args);
    for _ in 0..3 {
        if !String::from_utf8_lossy(&out.stderr).contains("Text file busy") {
            break;
        }
        out = netns.exec("setpriv", &args);
    }
    if String::from_utf8_lossy(&out.stderr).contains("No such file") {
        skip("setpriv (util-linux) is not installed");
        return;
    }
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("ringside: "), "{stderr}");
    assert!(stderr.contains("Permission denied"), "{stderr}");
    let save = netns.run("iptables-save", &["-t", "nat"]);
    assert!(!save.contains("RINGSIDE"), "{save}");
}
