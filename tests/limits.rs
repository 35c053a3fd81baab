//! Limits a hostile or careless client runs into: the connection limit
//! (over it, connections are reset at once), the HTTP/2 limits (header
//! size, the rapid-reset attack, streams reset after they were forwarded),
//! and running out of file descriptors (counted, no busy loop, recovered
//! from on its own).

mod support;

use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use ::http::Request;
use support::clients::h2::{call, connect_watched, eventually_async, runtime};
use support::*;

/// A ringside with one opaque route to an echo origin on one shard.
fn opaque_echo(origin: &Origin) -> Launch {
    Ringside::route_to([origin.addr])
        .shards(1)
        .arg("--opaque-ports", origin.addr.port())
}

#[test]
fn connections_over_the_limit_are_reset_and_counted_while_open_ones_carry_on() {
    let origin = Origin::echo();
    let proxy = opaque_echo(&origin).arg("--max-connections", 2).start();
    let first = TcpStream::connect(proxy.route()).unwrap();
    let second = TcpStream::connect(proxy.route()).unwrap();
    assert_eq!(echo_and_keep_open(&first, b"one"), b"one");
    assert_eq!(echo_and_keep_open(&second, b"two"), b"two");

    let mut third = TcpStream::connect(proxy.route()).unwrap();
    assert!(ends_in_reset(&mut third), "a third connection is reset");
    let metrics = proxy.metrics();
    let refused = [("reason", "max_connections")];
    assert_eq!(
        metrics.sum("ringside_connections_refused_total", &refused),
        1.0
    );
    assert_eq!(metrics.sum("tcp_open_connections", &[("peer", "src")]), 2.0);

    // The open ones were not touched, and a place that frees up is taken.
    assert_eq!(echo_and_keep_open(&first, b"still one"), b"still one");
    assert_eq!(echo_over(&second, b"last of two"), b"last of two");
    eventually("the second connection's place to free up", || {
        proxy
            .metrics()
            .sum("tcp_open_connections", &[("peer", "src")])
            == 1.0
    });
    assert_eq!(echo_through(proxy.route(), b"new"), b"new");
    assert_eq!(
        proxy
            .metrics()
            .sum("ringside_connections_refused_total", &refused),
        1.0
    );
}

#[test]
fn header_blocks_over_the_limit_are_answered_431_and_never_forwarded() {
    let origin = H2Origin::start();
    let proxy = Ringside::route_to([origin.addr])
        .shards(1)
        .arg("--http2-max-header-list-size", 4096)
        .start();
    let url = format!("http://{}/echo", proxy.route());
    let big = format!("x-big: {}", "a".repeat(8192));
    let refused = curl(&[
        "--http2-prior-knowledge",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        &big,
        &url,
    ]);
    assert_eq!(refused.text(), "431");
    assert_eq!(origin.requests(), 0);
    let small = curl(&["--http2-prior-knowledge", "--data-binary", "fits", &url]);
    assert_eq!(small.text(), "fits");
    assert_eq!(origin.requests(), 1);
}

#[test]
fn a_request_line_past_8_kib_is_answered_414_and_never_forwarded() {
    let origin = HttpOrigin::start("a", Duration::ZERO);
    let config = TempPath::holding(format!(
        "[runtime]\nshards = 1\n\n[[route]]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{}\"]\nprotocol = \"http1\"\n",
        origin.addr
    ));
    let proxy = Ringside::start(&["--config", config.as_str()]);
    let base = format!("http://{}/", proxy.route());
    let status = |path_len: usize| {
        let url = format!("{base}{}", "a".repeat(path_len));
        curl(&["-o", "/dev/null", "-w", "%{http_code}", &url])
            .text()
            .to_string()
    };
    assert_eq!(status(20_000), "414");
    assert_eq!(origin.requests(), 0);
    // A line of 8,000 octets, which RFC 9112 asks every server to take.
    assert_eq!(status(8_000 - "GET / HTTP/1.1".len()), "200");
    assert_eq!(origin.requests(), 1);
}

/// How many streams the rapid-reset client tries to open and reset.
const RAPID_RESETS: usize = 10_000;

#[test]
fn a_rapid_reset_client_is_cut_off_with_enhance_your_calm_and_little_reaches_the_upstream() {
    let origin = H2Origin::start();
    let proxy = Ringside::routing_to([origin.addr]);
    let addr = proxy.route();
    let (opened, ended) = runtime().block_on(async move {
        let (sender, connection) = connect_watched(addr).await;
        let mut opened = 0;
        while opened < RAPID_RESETS {
            let Ok(mut ready) = sender.clone().ready().await else {
                break;
            };
            let request = Request::get("http://test.local/stall").body(()).unwrap();
            let Ok((_response, mut stream)) = ready.send_request(request, false) else {
                break;
            };
            stream.send_reset(h2::Reason::CANCEL);
            opened += 1;
            // Let the connection task write what was queued, as a client
            // looping as fast as its socket takes it would.
            tokio::task::yield_now().await;
        }
        let ended = tokio::time::timeout(WAIT_LIMIT, connection).await;
        (opened, ended.expect("the connection ends").unwrap())
    });
    let err = ended.expect_err("ringside ends the connection with an error code");
    assert_eq!(err.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM), "{err}");
    assert!(err.is_go_away() && err.is_remote(), "{err}");
    assert!(opened < RAPID_RESETS, "all {opened} streams went through");
    // At most the requests ringside keeps in flight (100) plus the early
    // resets it tolerates (100), with room to spare, and not thousands. In
    // practice h2's pending-accept limit (20 resets) cuts it off first.
    let forwarded = origin.requests();
    assert!(
        forwarded <= 400,
        "{forwarded} of {opened} requests forwarded"
    );
    let metrics = proxy.wait_idle();
    assert_eq!(
        metrics.sum("ringside_http2_enhance_your_calm_total", &[]),
        1.0
    );
}

#[test]
fn streams_reset_after_they_were_forwarded_are_cancelled_upstream_and_limited() {
    const LIMIT: usize = 5;
    let origin = H2Origin::start();
    let proxy = Ringside::route_to([origin.addr])
        .shards(1)
        .arg("--http2-max-premature-resets", LIMIT)
        .start();
    let addr = proxy.route();
    let origin_ref = &origin;
    let ended = runtime().block_on(async move {
        let (mut sender, connection) = connect_watched(addr).await;
        // A call that completes first: it counts among the connection's
        // streams, and the early resets are still more than half of them.
        let ok = Request::post("http://test.local/echo").body(()).unwrap();
        assert_eq!(
            call(&mut sender, ok, b"ok".to_vec()).await.unwrap().status,
            200
        );
        for i in 1..=LIMIT + 1 {
            let mut ready = sender.clone().ready().await.unwrap();
            let request = Request::get("http://test.local/stall").body(()).unwrap();
            let (_response, mut stream) = ready.send_request(request, true).unwrap();
            eventually_async("the stalled request to reach the origin", || {
                origin_ref.requests() == 1 + i
            })
            .await;
            stream.send_reset(h2::Reason::CANCEL);
            eventually_async("ringside to cancel the upstream stream", || {
                origin_ref.resets_seen() == i
            })
            .await;
        }
        tokio::time::timeout(WAIT_LIMIT, connection)
            .await
            .expect("the connection ends")
            .unwrap()
    });
    let err = ended.expect_err("ringside ends the connection with an error code");
    assert_eq!(err.reason(), Some(h2::Reason::ENHANCE_YOUR_CALM), "{err}");
    let metrics = proxy.wait_idle();
    let cause = [("cause", "premature_resets")];
    assert_eq!(
        metrics.sum("ringside_http2_enhance_your_calm_total", &cause),
        1.0
    );
}

/// The open-files limit ringside runs under in the test below: room for
/// its own fds and a few dozen connections.
const OPEN_FILES: usize = 128;

#[test]
fn out_of_file_descriptors_accepts_are_counted_paused_and_resumed() {
    let origin = Origin::echo();
    let start = |limit: usize| {
        let proxy = opaque_echo(&origin)
            .arg("--forward-mode", "copy")
            .arg("--max-connections", 100_000)
            .open_files_limit(limit as u64)
            .start();
        proxy.wait_ready();
        proxy
    };
    // Connections in until no fd is left, each holding a client and an
    // upstream fd: the next accept fails with EMFILE. The limit is the one
    // ringside started under, as a real one is (an accept armed in the
    // kernel keeps the limit of when it was armed, so lowering it now would
    // not be seen until that accept ended), one more if what ringside holds
    // idle leaves an odd count: the last fd would go to a client whose
    // upstream could then not be opened.
    let mut proxy = start(OPEN_FILES);
    let mut limit = OPEN_FILES;
    if (limit - proxy.fds_below(limit)) % 2 == 1 {
        limit += 1;
        proxy = start(limit);
    }
    let open: Vec<TcpStream> = (0..(limit - proxy.fds_below(limit)) / 2)
        .map(|i| {
            let stream = TcpStream::connect(proxy.route()).unwrap();
            assert_eq!(echo_and_keep_open(&stream, &[i as u8]), [i as u8]);
            stream
        })
        .collect();
    assert_eq!(proxy.fds_below(limit), limit);
    // These wait in the backlog while every accept fails.
    let waiting: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(proxy.route()).unwrap())
        .collect();

    // A busy loop would burn a whole CPU second per second here.
    let (cpu_before, started) = (proxy.cpu_time(), Instant::now());
    thread::sleep(Duration::from_secs(1));
    let cpu = proxy.cpu_time() - cpu_before;
    let elapsed = started.elapsed();
    assert!(
        cpu.as_secs_f64() < 0.3 * elapsed.as_secs_f64(),
        "{cpu:?} of CPU in {elapsed:?} while out of fds"
    );

    drop((open, waiting));
    // The admin server's accepts failed too: this scrape waits in its
    // backlog until the closed connections have given their fds back.
    let metrics = proxy.metrics();
    let emfile = [("reason", "emfile")];
    let failed = metrics.sum("ringside_accept_errors_total", &emfile);
    assert!(failed >= 1.0, "accept errors counted: {failed}");
    assert_eq!(echo_through(proxy.route(), b"back"), b"back");
}
