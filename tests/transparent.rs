//! Transparent proxying, in a network namespace of each test's own: an
//! iptables nat OUTPUT rule redirects the test's connections to
//! 198.18.0.0/24 to ringside's outbound listener, and ringside, which runs
//! under a group the rule exempts, carries each one to its original
//! destination. No route is configured. Tests print `SKIP:` and return
//! where namespaces or iptables are unavailable.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

/// The group ringside runs under, which the redirect rule exempts so that
/// its own upstream connections are not redirected back to it.
const RINGSIDE_GID: u32 = 4140;

/// The flag of an outbound listener on a port the kernel picks.
const OUTBOUND: (&str, &str) = ("--outbound-listen", "127.0.0.1:0");

/// A one-shard ringside with `flags`, which name one transparent
/// listener, with this namespace's traffic to 198.18.0.0/24 redirected to
/// that listener; `None` when the test is skipped.
fn redirected_ringside(netns: &Pod, test: &str, flags: &[(&str, &str)]) -> Option<Ringside> {
    let mut launch = Launch::new().gid(RINGSIDE_GID).shards(1);
    for (flag, value) in flags {
        launch = launch.arg(flag, value);
    }
    let proxy = launch.start();
    netns.redirect(test, proxy.transparent[0].port(), RINGSIDE_GID)?;
    Some(proxy)
}

/// One HTTP/1 request to `target` (an address iptables redirects) that
/// `origin` answers, counted by `proxy` under `direction` with `target` as
/// its `target_addr`.
fn one_request_through(proxy: &Ringside, target: &str, origin: &str, direction: &str) {
    // -g: an IPv6 address's brackets are not a curl glob.
    let response = curl(&["-g", "-i", &format!("http://{target}/size/10")]);
    let answered = format!("x-origin: {origin}");
    assert!(response.text().contains(&answered), "{}", response.text());
    let metrics = proxy.wait_idle();
    let labels = [("direction", direction), ("target_addr", target)];
    assert_eq!(metrics.sum("request_total", &labels), 1.0);
}

#[test]
fn http_and_opaque_connections_reach_their_original_destination_once() {
    let test = "http_and_opaque_connections_reach_their_original_destination_once";
    let Some(netns) = Pod::enter(test) else {
        return;
    };
    let web = HttpOrigin::start_on(&format!("{POD_ADDR}:0"), "web", Duration::ZERO);
    // 6379 is one of the default opaque ports (Redis): no detection.
    let redis = Origin::echo_on(&format!("{POD_ADDR}:6379"));
    let Some(proxy) = redirected_ringside(&netns, test, &[OUTBOUND]) else {
        return;
    };

    let url = format!("http://{}/size/10", web.addr);
    let response = curl(&["-i", &url]);
    assert!(
        response.text().contains("x-origin: web"),
        "{}",
        response.text()
    );
    assert_eq!(web.requests(), 1);

    let data = random_bytes(4 << 20, 12);
    assert!(echo_through(redis.addr, &data) == data, "bytes differ");
    // One client connection, one upstream connection: no loop.
    assert_eq!(redis.accepted(), 1);

    let metrics = proxy.wait_idle();
    let web_target = web.addr.to_string();
    let http = [("direction", "outbound"), ("target_addr", &web_target)];
    assert_eq!(metrics.sum("request_total", &http), 1.0);
    let redis_target = redis.addr.to_string();
    let opaque = [("target_addr", redis_target.as_str()), ("peer", "src")];
    assert_eq!(metrics.sum("tcp_open_total", &opaque), 1.0);
    assert_eq!(
        metrics.sum("tcp_read_bytes_total", &opaque),
        data.len() as f64
    );
    let opaque_port = [
        ("target_addr", redis_target.as_str()),
        ("result", "opaque_port"),
    ];
    assert_eq!(metrics.sum("protocol_detect_total", &opaque_port), 1.0);
    // Two client connections in, two upstream connections out.
    assert_eq!(metrics.sum("tcp_open_total", &[("peer", "src")]), 2.0);
    assert_eq!(metrics.sum("tcp_open_total", &[("peer", "dst")]), 2.0);
}

#[test]
fn a_server_first_banner_arrives_without_waiting_for_detection() {
    let test = "a_server_first_banner_arrives_without_waiting_for_detection";
    let Some(netns) = Pod::enter(test) else {
        return;
    };
    let smtp = Origin::smtp_on(&format!("{POD_ADDR}:0"));
    // The default 10 s detect timeout is in force.
    let Some(proxy) = redirected_ringside(&netns, test, &[OUTBOUND]) else {
        return;
    };
    let started = Instant::now();
    let mut client = TcpStream::connect(smtp.addr).unwrap();
    let mut banner = vec![0u8; SMTP_BANNER.len()];
    client.read_exact(&mut banner).unwrap();
    let waited = started.elapsed();
    assert_eq!(banner, SMTP_BANNER);
    assert!(waited < Duration::from_secs(1), "banner took {waited:?}");
    drop(client);

    let metrics = proxy.wait_idle();
    let target = smtp.addr.to_string();
    let server_first = [("target_addr", target.as_str()), ("result", "server_first")];
    assert_eq!(metrics.sum("protocol_detect_total", &server_first), 1.0);
}

#[test]
fn direct_and_looping_connections_are_refused_and_counted() {
    let test = "direct_and_looping_connections_are_refused_and_counted";
    let Some(netns) = Pod::enter(test) else {
        return;
    };
    let origin = Origin::echo();
    // Two routes beside the transparent listener: one on loopback, which
    // the redirect leaves alone, and one in the redirected range, so that
    // a connection to it is redirected to the outbound listener with
    // ringside itself as its original destination.
    let local_route = format!("127.0.0.1:0={}", origin.addr);
    let pod_route = format!("{POD_ADDR}:0={}", origin.addr);
    let flags = [OUTBOUND, ("--route", &local_route), ("--route", &pod_route)];
    let Some(proxy) = redirected_ringside(&netns, test, &flags) else {
        return;
    };
    let pod_route_addr = proxy.routes[1];
    assert_eq!(pod_route_addr.ip().to_string(), POD_ADDR);

    let mut direct = TcpStream::connect(proxy.transparent[0]).unwrap();
    assert!(ends_in_reset(&mut direct), "a direct connection is refused");
    let mut looping = TcpStream::connect(pod_route_addr).unwrap();
    assert!(
        ends_in_reset(&mut looping),
        "a looping connection is refused"
    );
    let metrics = proxy.metrics();
    let refused = |reason| metrics.sum("ringside_connections_refused_total", &[("reason", reason)]);
    assert_eq!(refused("not_redirected"), 1.0);
    assert_eq!(refused("loop"), 1.0);
    assert_eq!(metrics.sum("tcp_open_total", &[]), 0.0);
    assert_eq!(origin.accepted(), 0);

    // The loopback route still works beside the transparent listener.
    assert_eq!(
        echo_through(proxy.routes[0], b"still routed"),
        b"still routed"
    );
    assert_eq!(origin.accepted(), 1);
}

#[test]
fn inbound_connections_go_to_their_original_destination() {
    let test = "inbound_connections_go_to_their_original_destination";
    let Some(netns) = Pod::enter(test) else {
        return;
    };
    let app = HttpOrigin::start_on(&format!("{POD_ADDR}:0"), "app", Duration::ZERO);
    let inbound = ("--inbound-listen", "0.0.0.0:0");
    let Some(proxy) = redirected_ringside(&netns, test, &[inbound]) else {
        return;
    };
    one_request_through(&proxy, &app.addr.to_string(), "app", "inbound");
    assert_eq!(app.requests(), 1);
}

/// As Linkerd's inbound: a service bound to loopback only (a debug
/// endpoint, a local cache) stays out of reach of what comes in from
/// outside, whatever port a client (or a peer's transport header) names.
#[test]
fn a_service_bound_to_loopback_only_is_not_reached_inbound() {
    let test = "a_service_bound_to_loopback_only_is_not_reached_inbound";
    let Some(netns) = Pod::enter(test) else {
        return;
    };
    let private = HttpOrigin::start("private", Duration::ZERO);
    let inbound = ("--inbound-listen", "0.0.0.0:0");
    let Some(_proxy) = redirected_ringside(&netns, test, &[inbound]) else {
        return;
    };
    let original: std::net::SocketAddr = format!("{POD_ADDR}:{}", private.addr.port())
        .parse()
        .unwrap();
    let (status, _) = http_get(original, "/size/10");
    assert!(status == 502 || status == 503, "answered {status}");
    assert_eq!(private.requests(), 0);
}

/// `forward_to = "localhost"` is the choice of a host whose applications
/// listen on loopback only, and then every port of it is reached.
#[test]
fn inbound_connections_go_to_the_application_on_loopback_when_asked() {
    let test = "inbound_connections_go_to_the_application_on_loopback_when_asked";
    let Some(netns) = Pod::enter(test) else {
        return;
    };
    // The application listens on loopback only; its clients dial the
    // pod's address, where nothing listens but the redirect leads.
    let app = HttpOrigin::start("app", Duration::ZERO);
    let flags = [
        ("--inbound-listen", "0.0.0.0:0"),
        ("--inbound-forward-to", "localhost"),
    ];
    let Some(proxy) = redirected_ringside(&netns, test, &flags) else {
        return;
    };
    let original = format!("{POD_ADDR}:{}", app.addr.port());
    one_request_through(&proxy, &original, "app", "inbound");
    assert_eq!(app.requests(), 1);
}

/// The listener configured as `127.0.0.1` also listens on `[::1]`, same
/// port, so that ip6tables redirects have somewhere to land.
#[test]
fn ipv6_connections_reach_their_original_destination() {
    let test = "ipv6_connections_reach_their_original_destination";
    let Some(netns) = Pod::enter(test) else {
        return;
    };
    let proxy = Launch::new()
        .gid(RINGSIDE_GID)
        .shards(1)
        .arg(OUTBOUND.0, OUTBOUND.1)
        .start();
    if !std::path::Path::new("/proc/net/if_inet6").exists() {
        let _ = writeln!(std::io::stderr(), "SKIP: {test}: the kernel has no IPv6");
        return;
    }
    let [twin] = proxy.transparent_v6[..] else {
        panic!("no IPv6 twin beside {:?}", proxy.transparent);
    };
    assert_eq!(
        twin,
        format!("[::1]:{}", proxy.transparent[0].port())
            .parse()
            .unwrap()
    );
    let Some(()) = netns.redirect_v6(test, twin.port(), RINGSIDE_GID) else {
        return;
    };
    let web = HttpOrigin::start_on(&format!("[{POD_ADDR_V6}]:0"), "web6", Duration::ZERO);
    one_request_through(&proxy, &web.addr.to_string(), "web6", "outbound");
}
