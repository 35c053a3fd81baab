//! Upstream names end to end, with the built binary and a DNS server of
//! the test's own: a name that moves from one origin to another under
//! HTTP/1 load fails no request; a route whose name does not resolve at
//! start answers 503 (and `/ready` lists the name, still ready) until it
//! does; a lookup that times out keeps the route answering; a reload
//! starts resolving new names and takes a new `[dns]`; `--check` reports
//! each name; lookups are counted on `/metrics`.

mod support;

use std::process::Command;
use std::time::Duration;

use support::dns_server::{Answer, DnsServer};
use support::*;

const NAME: &str = "origin.test";

/// One shard, one HTTP/1 route on `listen` to `origin.test:PORT`, names
/// asked of `server` and re-resolved every 100 ms.
fn config_text(server: &DnsServer, listen: &str, port: u16) -> String {
    format!(
        "[runtime]\nshards = 1\n\n\
         [dns]\nservers = [\"{}\"]\nmin_ttl = \"100ms\"\nmax_ttl = \"100ms\"\ntimeout = \"500ms\"\n\n\
         [[route]]\nlisten = \"{listen}\"\nupstreams = [\"{NAME}:{port}\"]\nprotocol = \"http1\"\n",
        server.addr()
    )
}

fn config(server: &DnsServer, port: u16) -> TempPath {
    TempPath::holding(config_text(server, "127.0.0.1:0", port))
}

fn failures(metrics: &Metrics) -> f64 {
    metrics.sum("response_total", &[("classification", "failure")])
}

fn lookups(proxy: &Ringside, result: &str) -> f64 {
    let labels = [("name", NAME), ("result", result)];
    proxy.metrics().sum("ringside_dns_lookups_total", &labels)
}

#[test]
fn a_name_moving_to_another_origin_under_http1_load_fails_no_request() {
    let a = HttpOrigin::start_on("127.0.0.1:0", "a", Duration::ZERO);
    let port = a.addr.port();
    let b = HttpOrigin::start_on(&format!("127.0.0.2:{port}"), "b", Duration::ZERO);
    let server = DnsServer::start();
    server.set_records(NAME, &["127.0.0.1"], 0);
    let file = config(&server, port);
    let proxy = Ringside::start(&["--config", file.as_str()]);
    let addr = proxy.route();
    // 503 until the first answer arrives: those are not the move's.
    eventually("the route reaches a", || http_get(addr, "/").0 == 200);
    let failed_before = failures(&proxy.metrics());

    let load = KeepAliveLoad::start(addr, 2);
    eventually("load through a", || a.requests() > 20);
    server.set_records(NAME, &["127.0.0.2"], 0);
    eventually("new connections reach b", || {
        let mut client = HttpClient::connect(addr);
        let response = client.get("/").expect("an answer");
        assert_eq!(response.status, 200);
        response.header("x-origin") == Some("b")
    });
    let before = b.requests();
    eventually("the load moves to b as well", || b.requests() > before + 20);
    load.stop();
    let metrics = proxy.wait_idle();
    assert_eq!(failures(&metrics), failed_before, "no request failed");
    assert!(lookups(&proxy, "ok") >= 2.0);
}

#[test]
fn a_route_whose_name_does_not_resolve_at_start_answers_503_until_it_does() {
    let origin = HttpOrigin::start("a", Duration::ZERO);
    let server = DnsServer::start();
    server.set(NAME, Answer::NxDomain);
    let file = config(&server, origin.addr.port());
    let proxy = Ringside::start(&["--config", file.as_str()]);
    eventually("an empty answer counted", || {
        lookups(&proxy, "empty") >= 1.0
    });
    assert_eq!(http_get(proxy.route(), "/").0, 503);
    // Still ready: one missing name must not take the whole pod out.
    assert_eq!(
        proxy.get("/ready"),
        (200, format!("ready\nunresolved {NAME}\n"))
    );
    assert!(proxy
        .metrics()
        .0
        .contains(&format!("ringside_dns_unresolved{{name=\"{NAME}\"}} 1")));

    server.set_records(NAME, &["127.0.0.1"], 0);
    eventually("the route answers", || {
        http_get(proxy.route(), "/").0 == 200
    });
    assert_eq!(proxy.get("/ready"), (200, "ready\n".to_string()));
    assert!(lookups(&proxy, "ok") >= 1.0);
}

#[test]
fn a_lookup_that_times_out_keeps_the_route_answering() {
    let origin = HttpOrigin::start("a", Duration::ZERO);
    let server = DnsServer::start();
    server.set_records(NAME, &["127.0.0.1"], 0);
    let file = config(&server, origin.addr.port());
    let proxy = Ringside::start(&["--config", file.as_str()]);
    eventually("the route answers", || {
        http_get(proxy.route(), "/").0 == 200
    });
    server.set(NAME, Answer::Drop);
    eventually("timeouts counted", || lookups(&proxy, "timeout") >= 2.0);
    assert_eq!(http_get(proxy.route(), "/").0, 200);
    assert_eq!(proxy.get("/ready"), (200, "ready\n".to_string()));
}

#[test]
fn check_reports_each_name_and_a_missing_one_is_not_fatal() {
    let server = DnsServer::start();
    server.set_records(NAME, &["127.0.0.1", "::1"], 60);
    let file = TempPath::holding(format!(
        "[dns]\nservers = [\"{}\"]\n\n\
         [[route]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{NAME}:80\", \"gone.test:80\"]\n",
        server.addr()
    ));
    let output = Command::new(BIN)
        .args(["--config", file.as_str(), "--check"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("[dns]\nservers = ["), "{stdout}");
    for line in [
        "# dns gone.test: unresolved (empty)",
        "# dns origin.test: 127.0.0.1, ::1",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line} in:\n{stdout}");
    }
}

#[test]
fn a_reload_starts_resolving_new_names_and_takes_a_new_dns_section() {
    let a = HttpOrigin::start_on("127.0.0.1:0", "a", Duration::ZERO);
    let port = a.addr.port();
    let b = HttpOrigin::start_on(&format!("127.0.0.2:{port}"), "b", Duration::ZERO);
    let (first, second) = (DnsServer::start(), DnsServer::start());
    first.set_records(NAME, &["127.0.0.1"], 0);
    second.set_records(NAME, &["127.0.0.2"], 0);
    // No name at start: no resolver runs.
    let held = ReservedPort::new();
    let listen = held.addr;
    let file = TempPath::holding(format!(
        "[runtime]\nshards = 1\n\n[[route]]\nlisten = \"{listen}\"\nupstreams = [\"{}\"]\nprotocol = \"http1\"\n",
        a.addr
    ));
    let proxy = Ringside::start(&["--config", file.as_str()]);
    let origin = || {
        let mut client = HttpClient::connect(listen);
        let response = client.get("/").expect("an answer");
        response.header("x-origin").map(str::to_string)
    };
    assert_eq!(origin().as_deref(), Some("a"));
    for (server, expected) in [(&first, "a"), (&second, "b")] {
        let text = config_text(server, &listen.to_string(), port);
        std::fs::write(file.as_str(), text).unwrap();
        assert_eq!(proxy.post("/reload").0, 200);
        eventually("the name's origin answers", || {
            origin().as_deref() == Some(expected)
        });
    }
    assert!(b.requests() > 0);
}
