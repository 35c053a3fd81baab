//! The process around the proxy: admin endpoints, SIGTERM drain, and the
//! configuration errors a user sees.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use support::*;

#[test]
fn live_ready_and_shards_answer() {
    let origin = Origin::echo();
    let proxy = Ringside::route_to([origin.addr]).shards(2).start();
    proxy.wait_ready();
    assert_eq!(proxy.get("/live"), (200, "live\n".to_string()));
    let (status, body) = proxy.get("/shards");
    assert_eq!(status, 200);
    assert_eq!(body.matches("\"shard\":").count(), 2, "{body}");
    assert_eq!(proxy.get("/nope").0, 404);
    let metrics = proxy.metrics();
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "ringside_build_info",
    ] {
        assert!(metrics.0.lines().any(|l| l.starts_with(name)), "no {name}");
    }
    assert_eq!(metrics.sum("ringside_shards", &[]), 2.0);
}

#[test]
fn post_shutdown_drains_and_exits_zero_and_a_get_does_not() {
    let origin = Origin::echo();
    let mut proxy = Ringside::route_to([origin.addr]).start();
    proxy.wait_ready();
    assert_eq!(proxy.get("/shutdown").0, 405);
    assert_eq!(proxy.get("/ready").0, 200, "a GET must not start the drain");
    assert_eq!(
        proxy.post("/shutdown"),
        (200, "shutting down\n".to_string())
    );
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .expect("exits after the drain");
    assert!(status.success(), "{status}");
}

#[test]
fn sigterm_lets_an_open_connection_finish_then_exits_zero() {
    let origin = Origin::echo();
    let mut proxy = Ringside::route_to([origin.addr]).start();
    proxy.wait_ready();
    let mut client = TcpStream::connect(proxy.route()).unwrap();
    // A newline makes the bytes "not HTTP" at once: no detect timeout.
    client.write_all(b"before\n").unwrap();
    let mut buf = [0u8; 7];
    client.read_exact(&mut buf).unwrap();

    proxy.signal("TERM");
    eventually("/ready turns 503", || proxy.get("/ready").0 == 503);
    assert!(
        proxy.wait_exit(Duration::from_millis(200)).is_none(),
        "exited while a connection was open"
    );

    client.write_all(b"after\n").unwrap();
    let mut buf = [0u8; 6];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"after\n");
    drop(client);
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .expect("exits after drain");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sigterm_closes_idle_keep_alive_http_connections_at_once() {
    let origin = HttpOrigin::start("a", Duration::ZERO);
    let mut proxy = Ringside::route_to([origin.addr]).start();
    let mut client = HttpClient::connect(proxy.route());
    assert_eq!(client.get("/").unwrap().status, 200);
    proxy.signal("TERM");
    // Far below the 30 s grace period: the idle connection is not waited for.
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .expect("exits without waiting out the grace period");
    assert_eq!(status.code(), Some(0));
    assert!(
        client.read(false).is_none(),
        "the idle connection was closed"
    );
}

#[test]
fn grace_period_cuts_connections_that_do_not_finish() {
    let origin = Origin::echo();
    let mut proxy = Ringside::route_to([origin.addr])
        .arg("--shutdown-grace", "200ms")
        .start();
    let mut client = TcpStream::connect(proxy.route()).unwrap();
    client.write_all(b"x\n").unwrap();
    client.read_exact(&mut [0u8; 2]).unwrap();
    proxy.signal("TERM");
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .expect("exits after the grace period");
    assert_eq!(status.code(), Some(0));
}

fn check(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = Command::new(BIN);
    command.arg("--check").args(args);
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn check_prints_the_effective_config_with_layers_applied() {
    let file = TempPath::holding(
        "[admin]\nlisten = \"127.0.0.1:9999\"\n[runtime]\nshards = 3\n\
         [[route]]\nlisten = \"127.0.0.1:4140\"\nupstreams = [\"127.0.0.1:8080\", \"127.0.0.1:8081\"]\n",
    );
    let (code, stdout, _) = check(
        &["--config", file.as_str(), "--shards", "2"],
        &[
            ("RINGSIDE_ADMIN_ADDR", "127.0.0.1:7777"),
            ("RINGSIDE_SHARDS", "5"),
            ("RINGSIDE_PIN", "off"),
        ],
    );
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("listen = \"127.0.0.1:7777\""),
        "env beats file:\n{stdout}"
    );
    assert!(stdout.contains("shards = 2"), "flag beats env:\n{stdout}");
    assert!(
        stdout.contains("pin = \"off\""),
        "env beats default:\n{stdout}"
    );
    assert!(
        stdout.contains("# on this host: shards = 2 (runtime.shards; cpuset "),
        "what the host makes of it:\n{stdout}"
    );
    assert!(stdout.contains("upstreams = [\"127.0.0.1:8080\", \"127.0.0.1:8081\"]"));
}

#[test]
fn each_bad_key_gives_a_one_line_error_and_exit_64() {
    let cases: &[(&str, &str)] = &[
        ("[admin]\nlisten = \"nope\"\n", "admin.listen"),
        ("[admin]\nlisen = \"127.0.0.1:1\"\n", "lisen"),
        ("[runtime]\nshards = 0\n", "runtime.shards"),
        ("[runtime]\npin = \"always\"\n", "runtime.pin"),
        // More shards than this host has CPUs, each to be pinned to its own.
        ("[runtime]\nshards = 100000\npin = \"cores\"\n", "runtime.pin"),
        ("[runtime]\nshutdown_grace = \"soon\"\n", "runtime.shutdown_grace"),
        ("[proxy]\nconnect_timeout = \"0s\"\n", "proxy.connect_timeout"),
        ("[proxy]\nforward_mode = \"teleport\"\n", "proxy.forward_mode"),
        ("[log]\nformat = \"xml\"\n", "log.format"),
        ("[[route]]\nlisten = \"127.0.0.1:1\"\nupstreams = []\n", "route[0].upstreams"),
        ("[[route]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"x\"]\n", "route[0].upstreams[0]"),
        ("[[route]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"127.0.0.1:2\"]\ndirection = \"up\"\n", "route[0].direction"),
        ("[surprise]\n", "surprise"),
    ];
    for (text, key) in cases {
        let file = TempPath::holding(text);
        let (code, _, stderr) = check(&["--config", file.as_str()], &[]);
        assert_eq!(code, Some(64), "{text:?}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{text:?}: not one line: {stderr}"
        );
        assert!(
            stderr.contains(key),
            "{text:?}: {stderr:?} does not name {key}"
        );
    }
    let (code, _, stderr) = check(&["--route", "127.0.0.1:1"], &[]);
    assert_eq!(code, Some(64));
    assert!(stderr.contains("--route"), "{stderr}");
    let (code, _, stderr) = check(&["--config", "/nonexistent/ringside.toml"], &[]);
    assert_eq!(code, Some(64));
    assert!(stderr.contains("/nonexistent/ringside.toml"), "{stderr}");
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let output = Command::new(BIN)
        .args([
            "--admin-addr",
            "127.0.0.1:0",
            "--route",
            &format!("{addr}=127.0.0.1:9"),
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already in use"), "{stderr}");
    // A log read from a pipe (a file, journald, `kubectl logs`) is plain
    // text: colour codes are for a terminal.
    assert!(!stderr.contains('\u{1b}'), "colour codes in: {stderr:?}");
}

#[test]
fn closed_stdout_and_stderr_do_not_stop_it() {
    use std::io::BufRead;
    use std::process::Stdio;
    // No `listening` line will tell the route's port: it is chosen here,
    // and its upstream is a port nobody listens on.
    let (held, nobody) = (ReservedPort::new(), closed_port());
    let (route, refused) = (held.addr, nobody.addr);
    let child = Command::new(BIN)
        .args(["--admin-addr", "127.0.0.1:0", "--shards", "1"])
        .args(["--route", &format!("{route}={refused}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Killed however the test ends.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Killed(child);
    let child = &mut child.0;
    // Its stdout's reader gone before the `listening` lines are written.
    drop(child.stdout.take());
    let logs = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut admin = None;
    for line in logs.lines() {
        let line = line.unwrap();
        if let Some((_, after)) = line.split_once("ringside started") {
            let (_, port) = after.split_once("127.0.0.1:").expect("the admin address");
            let port: String = port.chars().take_while(char::is_ascii_digit).collect();
            admin = Some(format!("127.0.0.1:{port}").parse().unwrap());
            break;
        }
    }
    // Its stderr's reader gone too (dropped with `lines`): the warnings
    // of the connections that fail below cannot be written.
    let admin = admin.expect("ringside started, its stdout closed");
    for _ in 0..3 {
        let mut stream = TcpStream::connect(route).unwrap();
        let _ = stream.write_all(b"x");
        let _ = stream.read(&mut [0; 1]);
    }
    let metrics = http_get(admin, "/metrics").1;
    let failed = "ringside_upstream_connect_failures_total{";
    assert!(metrics.contains(failed), "the failures counted: {metrics}");
    assert_eq!(http_get(admin, "/live").0, 200);
    assert!(child.try_wait().unwrap().is_none(), "still running");
}
