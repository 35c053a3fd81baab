//! Linkerd's inbound forwarding, with ringside started as Linkerd's
//! wrapper starts its proxy (no arguments, only `LINKERD2_PROXY_*`, the
//! injector's `[::]` listeners) in a network namespace of the test's own,
//! certified by the mock identity service: a connection goes to the
//! address it arrived on (linkerd2-proxy's `inbound/src/direct.rs`: after
//! a transport header, the pod's address plus the header's port; a
//! redirected one, its original destination), never to loopback, so a
//! service bound only to loopback stays out of reach; and only the pod's
//! own addresses (`LINKERD2_PROXY_INBOUND_IPS`, the injector's
//! `status.podIPs`) are served (`app/core/src/transport/allow_ips.rs`).

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use support::control_plane::{mesh_connect, ControlPlane, IdentityService, LinkerdPod};
use support::{Origin, Pod, Ringside, POD_ADDR, POD_ADDR_V6};

const WEB: &str = "web.default.serviceaccount.identity.linkerd.cluster.local";
const CLIENT: &str = "client.default.serviceaccount.identity.linkerd.cluster.local";
/// The group ringside runs under, which the redirect rule exempts.
const RINGSIDE_GID: u32 = 4140;
/// An address the pod's interface holds that is not in INBOUND_IPS.
const OTHER_ADDR: &str = "198.18.0.9";
/// Bytes no detector takes for HTTP or TLS: carried at once.
const OPAQUE: &[u8] = b"\x00\x01opaque bytes\x00";

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// Runs `ip` with `args` in the namespace the thread is in.
fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?}");
}

/// ringside with Linkerd's environment as the injector writes it
/// (`_proxy.tpl`: inbound and admin on `[::]`, `INBOUND_IPS` from
/// `status.podIPs`), in the pod the thread is in. Returns it ready
/// (certified), with its log, and the identity service.
fn linkerd_pod(inbound_ips: &str) -> (Ringside, support::output::Output, ControlPlane) {
    let plane = ControlPlane::start(IdentityService::new());
    let pod = LinkerdPod::new(WEB, &plane)
        .env("LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "[::]:4143")
        .env("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", "[::]:4191")
        .env("LINKERD2_PROXY_INBOUND_IPS", inbound_ips)
        .gid(RINGSIDE_GID);
    let (ringside, log) = pod.start_logged();
    ringside.wait_ready();
    (ringside, log, plane)
}

/// What came back for `data` on a connection to `to`, or nothing when
/// the connection was refused, reset or closed unanswered.
fn echo_or_nothing(to: SocketAddr, data: &[u8]) -> Vec<u8> {
    let Ok(mut stream) = TcpStream::connect(to) else {
        return Vec::new();
    };
    stream.set_read_timeout(Some(support::WAIT_LIMIT)).unwrap();
    let _ = stream.write_all(data);
    let _ = stream.shutdown(Shutdown::Write);
    let mut back = Vec::new();
    let _ = stream.read_to_end(&mut back);
    back
}

/// What came back for `data` over a meshed connection to `inbound`
/// whose header names `port`; nothing when ringside closed it.
fn meshed_echo(inbound: SocketAddr, plane: &ControlPlane, port: u16, data: &[u8]) -> Vec<u8> {
    let (mut stream, _) = mesh_connect(inbound, WEB, plane.identity.ca(), Some(CLIENT), port);
    let _ = stream.write_all(data).and_then(|_| stream.flush());
    let mut back = vec![0; data.len()];
    match stream.read_exact(&mut back) {
        Ok(()) => back,
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_connection_goes_to_the_address_it_arrived_on_and_never_to_loopback() {
    let test = "a_connection_goes_to_the_address_it_arrived_on";
    let Some(pod) = Pod::enter(test) else {
        return;
    };
    // The pod's IPv6 address too, as a dual-stack pod has.
    ip(&[
        "addr",
        "add",
        &format!("{POD_ADDR_V6}/64"),
        "dev",
        "pod0",
        "nodad",
    ]);
    let (ringside, _log, plane) = linkerd_pod(&format!("{POD_ADDR},{POD_ADDR_V6}"));
    let on_pod_ip = Origin::echo_on(&format!("{POD_ADDR}:0"));
    let on_pod_ipv6 = Origin::echo_on(&format!("[{POD_ADDR_V6}]:0"));
    let loopback_only = Origin::echo_on("127.0.0.1:0");
    let inbound = addr(&format!("{POD_ADDR}:4143"));
    let inbound_v6 = addr(&format!("[{POD_ADDR_V6}]:4143"));

    // A meshed peer, over IPv4 and IPv6 to the one `[::]` listener: the
    // header's port at the address the connection reached.
    let port = on_pod_ip.addr.port();
    assert_eq!(meshed_echo(inbound, &plane, port, OPAQUE), OPAQUE);
    let port = on_pod_ipv6.addr.port();
    assert_eq!(meshed_echo(inbound_v6, &plane, port, OPAQUE), OPAQUE);
    // The same port on loopback only: the pod's address has nothing there.
    let port = loopback_only.addr.port();
    assert!(meshed_echo(inbound, &plane, port, OPAQUE).is_empty());

    // Redirected as proxy-init redirects (the original destination kept):
    // to the original destination.
    pod.redirect(test, 4143, RINGSIDE_GID).unwrap();
    assert_eq!(echo_or_nothing(on_pod_ip.addr, OPAQUE), OPAQUE);
    let loopback_port = loopback_only.addr.port();
    let behind_loopback = addr(&format!("{POD_ADDR}:{loopback_port}"));
    assert!(echo_or_nothing(behind_loopback, OPAQUE).is_empty());

    assert_eq!(loopback_only.accepted(), 0, "loopback is never used");
    assert_eq!((on_pod_ip.accepted(), on_pod_ipv6.accepted()), (2, 1));
    let metrics = ringside.wait_idle();
    // An IPv4 client of `[::]` is labelled with its IPv4 address.
    let target = on_pod_ip.addr.to_string();
    let inbound_to = [
        ("direction", "inbound"),
        ("peer", "src"),
        ("target_addr", &target),
    ];
    assert_eq!(metrics.sum("tcp_open_total", &inbound_to), 2.0);
    let target = on_pod_ipv6.addr.to_string();
    let inbound_to = [
        ("direction", "inbound"),
        ("peer", "src"),
        ("target_addr", &target),
    ];
    assert_eq!(metrics.sum("tcp_open_total", &inbound_to), 1.0);
}

#[test]
fn an_inbound_connection_to_an_address_not_in_inbound_ips_is_refused() {
    let test = "an_inbound_connection_to_an_address_not_in_inbound_ips";
    let Some(pod) = Pod::enter(test) else {
        return;
    };
    ip(&["addr", "add", &format!("{OTHER_ADDR}/24"), "dev", "pod0"]);
    let (ringside, mut log, plane) = linkerd_pod(POD_ADDR);
    // On every address: only ringside decides which ones reach it.
    let app = Origin::echo_on("0.0.0.0:0");
    let port = app.addr.port();

    // Direct, to the inbound listener: at the pod's address a meshed peer
    // is served; at the other, the connection is reset before TLS.
    let inbound = addr(&format!("{POD_ADDR}:4143"));
    assert_eq!(meshed_echo(inbound, &plane, port, OPAQUE), OPAQUE);
    let elsewhere = addr(&format!("{OTHER_ADDR}:4143"));
    assert!(echo_or_nothing(elsewhere, b"\x16\x03\x01").is_empty());
    let message = "inbound connections are not allowed on this IP address";
    let lines = log.until(message, Duration::from_secs(10));
    let line = lines.last().unwrap();
    assert!(line.contains(OTHER_ADDR), "{line}");

    // Redirected: by the original destination.
    pod.redirect(test, 4143, RINGSIDE_GID).unwrap();
    let to_pod = addr(&format!("{POD_ADDR}:{port}"));
    assert_eq!(echo_or_nothing(to_pod, OPAQUE), OPAQUE);
    let to_other = addr(&format!("{OTHER_ADDR}:{port}"));
    assert!(echo_or_nothing(to_other, OPAQUE).is_empty());

    assert_eq!(app.accepted(), 2, "only the pod's address reached it");
    let metrics = ringside.wait_idle();
    let refused = [("reason", "ip_not_allowed")];
    let counted = metrics.sum("ringside_connections_refused_total", &refused);
    assert_eq!(counted, 2.0);
}
