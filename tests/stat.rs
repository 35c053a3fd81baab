//! `ringside stat` and `ringside top` against a real ringside: the
//! library's table around traffic the test sent and counted itself, the
//! binary's JSON and its error for an admin that is not there, and `top`
//! in a real terminal (tmux): it draws the table, quits on `q` and Ctrl-C
//! with status 0, and gives the terminal back (main screen, cooked mode).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use ringside::stat::{scrape, OutputFormat, Row, StatTable};
use support::identity::{client_side, identities, server_side, CLIENT, SERVER};
use support::tmux::{Tmux, PROMPT};
use support::*;

/// `http_get`'s Host, hence the row's name.
const AUTHORITY: &str = "test";

fn row<'a>(table: &'a StatTable, name: &str) -> &'a Row {
    let found = table.rows.iter().find(|row| row.name == name);
    found.unwrap_or_else(|| panic!("no row {name:?} in {table:#?}"))
}

/// An HTTP origin, and a ringside with one route to it.
fn http_route() -> (HttpOrigin, Ringside) {
    let origin = HttpOrigin::start("origin", Duration::ZERO);
    let ringside = Ringside::routing_to([origin.addr]);
    (origin, ringside)
}

/// `count` requests through `route`, one connection each, a third of
/// them answered 500 by the origin.
fn send_requests(route: std::net::SocketAddr, count: usize) {
    for n in 0..count {
        let status = if n % 3 == 0 { 500 } else { 200 };
        let (got, _) = http_get(route, &format!("/status/{status}"));
        assert_eq!(got, status);
    }
}

#[test]
fn stat_counts_the_requests_a_client_sent_and_their_success() {
    let (_origin, ringside) = http_route();
    let before = scrape(ringside.admin).unwrap();
    let start = Instant::now();
    send_requests(ringside.route(), 30);
    ringside.wait_idle();
    let after = scrape(ringside.admin).unwrap();
    let window = start.elapsed();

    let table = StatTable::between(&before, &after, window);
    let row = row(&table, AUTHORITY);
    assert_eq!(row.direction, "outbound");
    assert_eq!(row.target_addrs, [ringside.route().to_string()]);
    assert_eq!((row.requests, row.responses, row.successes), (30, 30, 20));
    assert_eq!(row.success, Some(20.0 / 30.0));
    assert_eq!(row.rps, Some(30.0 / window.as_secs_f64()));
    assert!(row.latency_ms_p50 <= row.latency_ms_p99 && row.latency_ms_p50.is_some());
    // The route's one authority: its connections are in the same row.
    assert_eq!((row.tcp_opened, row.tcp_open_connections), (30, Some(0)));
    assert_eq!(table.rows.len(), 1, "{table:#?}");

    let text = table.render(OutputFormat::Table);
    let line = text.lines().find(|line| line.contains(" test "));
    let line = line.unwrap_or_else(|| panic!("no row in\n{text}"));
    assert!(
        line.starts_with("outbound") && line.contains("66.67%"),
        "{text}"
    );
    assert!(text.starts_with("DIRECTION   NAME"), "{text}");
}

#[test]
fn stat_counts_the_bytes_of_an_opaque_route() {
    let origin = Origin::echo();
    let ringside = Ringside::declared("opaque", origin.addr);
    let before = scrape(ringside.admin).unwrap();
    let data = random_bytes(100_000, 25);
    assert_eq!(echo_through(ringside.route(), &data), data);
    ringside.wait_idle();
    let after = scrape(ringside.admin).unwrap();

    let table = StatTable::between(&before, &after, Duration::from_secs(2));
    let row = row(&table, &ringside.route().to_string());
    assert_eq!(
        (row.tcp_read_bytes, row.tcp_write_bytes),
        (100_000, 100_000)
    );
    assert_eq!(row.tcp_read_bytes_rate, Some(50_000.0));
    assert_eq!((row.tcp_opened, row.tcp_open_connections), (1, Some(0)));
    // No HTTP: no request columns, as linkerd shows `-`.
    assert_eq!(
        (row.rps, row.success, row.latency_ms_p99),
        (None, None, None)
    );
    let wide = table.render(OutputFormat::Wide);
    assert!(wide.contains("50000.0B/s"), "{wide}");
}

#[test]
fn meshed_rows_show_tls_and_the_peer_identity() {
    let dir = identities();
    let origin = HttpOrigin::start("origin", Duration::ZERO);
    let server = server_side(&dir, &[]);
    let client = client_side(&dir, origin.addr, &server);
    let (client_before, server_before) =
        (scrape(client.admin).unwrap(), scrape(server.admin).unwrap());
    send_requests(client.route(), 6);
    client.wait_idle();
    server.wait_idle();
    let window = Duration::from_secs(1);
    let outbound = StatTable::between(&client_before, &scrape(client.admin).unwrap(), window);
    let inbound = StatTable::between(&server_before, &scrape(server.admin).unwrap(), window);

    let row = row(&outbound, AUTHORITY);
    assert_eq!(
        (row.direction.as_str(), row.tls.as_str()),
        ("outbound", "true")
    );
    assert_eq!(
        (row.identities.as_slice(), row.responses),
        (&[SERVER.to_string()][..], 6)
    );
    let row = inbound
        .rows
        .iter()
        .find(|row| row.direction == "inbound" && row.requests > 0);
    let row = row.unwrap_or_else(|| panic!("no inbound HTTP row in {inbound:#?}"));
    assert_eq!((row.tls.as_str(), row.successes), ("true", 4));
    assert_eq!(row.identities, [CLIENT]);
    let wide = inbound.render(OutputFormat::Wide);
    assert!(
        wide.lines()
            .any(|l| l.starts_with("inbound") && l.ends_with(CLIENT)),
        "{wide}"
    );
}

#[test]
fn the_binary_prints_json_with_the_route_row() {
    let (_origin, ringside) = http_route();
    send_requests(ringside.route(), 3);
    let admin = ringside.admin.to_string();
    let output = Command::new(BIN)
        .args(["stat", "--admin", &admin, "--window", "1s", "-o", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).expect("stat -o json parses");
    let rows = rows.as_array().expect("an array of rows");
    let row = rows.iter().find(|row| row["name"] == AUTHORITY);
    let row = row.unwrap_or_else(|| panic!("no row {AUTHORITY:?} in {stdout}"));
    assert_eq!(row["direction"], "outbound");
    assert_eq!(row["target_addrs"][0], ringside.route().to_string());
    // Nothing was sent in the window: a rate of 0, no success rate.
    assert_eq!(row["rps"], 0.0);
    assert!(row["success"].is_null(), "{row}");
    assert_eq!(row["tcp_open_connections"], 0);
}

#[test]
fn the_binary_says_when_no_admin_answers() {
    let nobody = closed_port();
    let addr = nobody.addr;
    let output = Command::new(BIN)
        .args(["stat", "--admin", &addr.to_string(), "--window", "1s"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("ringside: no ringside admin at {addr}: connection refused\n")
    );
}

/// Types `ringside top` with `args` at the prompt, and how it exits.
fn start_top(tmux: &Tmux, args: &str) {
    tmux.send_keys(&[&format!("{BIN} top {args}; echo top-exited=$?"), "Enter"]);
}

/// Waits for `top` to exit; its status, the shell back at its prompt on
/// the main screen, the table gone with the alternate screen, and the
/// terminal in cooked mode (`icanon echo`, which raw mode turns off).
fn assert_exited_and_restored(tmux: &Tmux) {
    let exited = |screen: &str| screen.lines().any(|l| l.starts_with("top-exited="));
    let screen = tmux.wait_for("top to exit", exited);
    assert!(screen.lines().any(|l| l == "top-exited=0"), "{screen}");
    assert!(!tmux.alternate_screen(), "{screen}");
    assert!(!screen.contains("LATENCY_P99"), "{screen}");
    let modes = "stty -a | tr ' ' '\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\\n' ' '; echo";
    tmux.send_keys(&[modes, "Enter"]);
    // The shell's next prompt comes after stty's line: wait for both.
    let screen = tmux.wait_for("stty's modes, then the prompt", |screen| {
        let printed = screen
            .lines()
            .any(|l| l.trim_end().ends_with("echo") && !l.contains("stty"));
        printed && screen.trim_end().lines().last() == Some(PROMPT.trim_end())
    });
    assert!(
        screen.lines().any(|l| l.trim_end() == "icanon echo"),
        "{screen}"
    );
    assert_eq!(
        screen.trim_end().lines().last(),
        Some(PROMPT.trim_end()),
        "{screen}"
    );
}

#[test]
fn top_draws_the_table_sorts_and_quits_on_q_restoring_the_terminal() {
    let (_origin, ringside) = http_route();
    send_requests(ringside.route(), 3);
    let tmux = Tmux::start(150, 40);
    start_top(
        &tmux,
        &format!("--admin {} --interval 200ms", ringside.admin),
    );

    let screen = tmux.wait_for("the table with the route", |screen| {
        screen.contains("LATENCY_P99")
            && (screen.lines()).any(|l| l.contains("│outbound ") && l.contains(" test "))
    });
    assert!(screen.contains("sorted by RPS"), "{screen}");
    assert!(tmux.alternate_screen(), "{screen}");
    tmux.send_keys(&["s"]);
    tmux.wait_for("the sort by p99", |screen| {
        screen.contains("sorted by LATENCY_P99")
    });
    tmux.send_keys(&["q"]);
    assert_exited_and_restored(&tmux);
}

#[test]
fn top_shows_an_unreachable_admin_and_quits_on_ctrl_c() {
    let nobody = closed_port();
    let addr = nobody.addr;
    let tmux = Tmux::start(150, 30);
    start_top(&tmux, &format!("--admin {addr}"));
    let refused = format!("no ringside admin at {addr}: connection refused");
    tmux.wait_for("the admin shown unreachable", |screen| {
        screen.contains(&refused)
    });
    tmux.send_keys(&["C-c"]);
    assert_exited_and_restored(&tmux);
}
