//! ringside's outbound meshed with a peer that behaves as a stock Linkerd
//! inbound does (`support::linkerd_inbound`): what follows a transport
//! header is what the header declares, as Linkerd reads it. An upstream
//! connected while detecting declares no protocol, so Linkerd forwards it
//! as opaque bytes: HTTP/1 rides it as HTTP/1, never as HTTP/2 streams.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use support::identity::{identities, CLIENT, SERVER};
use support::linkerd_inbound::LinkerdInbound;
use support::*;

/// ringside's client side, with `app`'s address meshed through `linkerd`.
fn through(linkerd: &LinkerdInbound, app: std::net::SocketAddr, dir: &TempDir) -> Ringside {
    let peer = format!("127.0.0.1={SERVER}@{}", linkerd.addr.port());
    let launch = Ringside::route_to([app]).shards(1).arg("--mesh-peer", peer);
    launch.identity(dir, "client", CLIENT).start()
}

#[test]
fn http1_to_a_linkerd_peer_is_answered_from_the_first_request() {
    let dir = identities();
    let web = HttpOrigin::start_on("127.0.0.1:0", "web", Duration::ZERO);
    let linkerd = LinkerdInbound::start(&dir, "server");
    let client = through(&linkerd, web.addr, &dir);
    for request in 0..20 {
        let (status, body) = http_get(client.route(), "/hello");
        assert_eq!(
            (status, body.as_str()),
            (200, "hello from web"),
            "request {request}"
        );
    }
    assert_eq!(web.requests(), 20);
    // The first rode the connection made while detecting, which declared
    // nothing; once the route is known to speak HTTP, requests go as
    // streams of one connection that declares HTTP/2.
    assert_eq!(linkerd.opaque.load(Ordering::SeqCst), 1);
    assert_eq!(linkerd.http2.load(Ordering::SeqCst), 1);
}

#[test]
fn opaque_bytes_and_a_server_first_banner_cross_a_linkerd_peer() {
    let dir = identities();
    let echo = Origin::echo();
    let linkerd = LinkerdInbound::start(&dir, "server");
    let client = through(&linkerd, echo.addr, &dir);
    let data = random_bytes(4 << 20, 11);
    assert!(
        echo_through(client.route(), &data) == data,
        "4 MiB came back different"
    );

    let smtp = Origin::smtp();
    let client = through(&linkerd, smtp.addr, &dir);
    let waited = banner_wait(client.route());
    assert!(
        waited < Duration::from_secs(5),
        "the banner took {waited:?}"
    );
}
