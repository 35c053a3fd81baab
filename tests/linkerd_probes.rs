//! The admin server as a Linkerd pod uses it, with ringside started as
//! Linkerd's wrapper starts its proxy (no arguments, only
//! `LINKERD2_PROXY_*`): kubelet's `/live` and `/ready` on the pod's
//! address (the injector's `[::]:4191`, IPv4 and IPv6), and `POST
//! /shutdown` as the injector's `LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED`
//! says (linkerd2-proxy's `linkerd/app/admin/src/server.rs`).

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use support::control_plane::{ControlPlane, IdentityService, LinkerdPod};
use support::{http_get, http_request, Pod, POD_ADDR, POD_ADDR_V6};

const WEB: &str = "web.default.serviceaccount.identity.linkerd.cluster.local";

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn live_and_ready_answer_on_the_pod_address_and_shutdown_only_on_loopback() {
    let test = "live_and_ready_answer_on_the_pod_address";
    let Some(_pod) = Pod::enter(test) else {
        return;
    };
    let v6 = format!("{POD_ADDR_V6}/64");
    // IPv6 sockets IPv6-only by default (a per-namespace sysctl): `[::]`
    // must take IPv4 all the same.
    for (program, args) in [
        ("ip", &["addr", "add", &v6, "dev", "pod0", "nodad"][..]),
        ("sysctl", &["-qw", "net.ipv6.bindv6only=1"][..]),
    ] {
        let status = Command::new(program).args(args).status().unwrap();
        assert!(status.success(), "{program} {args:?}");
    }
    let plane = ControlPlane::start(IdentityService::new());
    let pod = LinkerdPod::new(WEB, &plane)
        .env("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", "[::]:4191")
        .env("LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED", "true");
    let (ringside, _) = pod.start();
    ringside.wait_ready();
    // What kubelet asks, at the pod's addresses (not loopback).
    for admin in [
        addr(&format!("{POD_ADDR}:4191")),
        addr(&format!("[{POD_ADDR_V6}]:4191")),
    ] {
        assert_eq!(http_get(admin, "/live"), (200, "live\n".to_string()));
        let (status, body) = http_get(admin, "/ready");
        assert_eq!((status, body.lines().next()), (200, Some("ready")));
        // From the pod's address, /shutdown is someone else's.
        let (status, _) = http_request(admin, "POST", "/shutdown");
        assert_eq!(status, 403, "{admin}");
    }
    assert_eq!(ringside.get("/ready").0, 200, "still running");
}

#[test]
fn with_the_shutdown_endpoint_disabled_post_shutdown_answers_404_even_from_loopback() {
    let plane = ControlPlane::start(IdentityService::new());
    let pod = LinkerdPod::new(WEB, &plane).env("LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED", "false");
    let (ringside, _) = pod.start();
    ringside.wait_ready();
    let answer = ringside.post("/shutdown");
    assert_eq!(
        answer,
        (404, "shutdown endpoint is not enabled\n".to_string())
    );
    assert_eq!(ringside.get("/ready").0, 200, "not draining");
}

#[test]
fn with_the_shutdown_endpoint_enabled_post_shutdown_from_loopback_stops_ringside() {
    let plane = ControlPlane::start(IdentityService::new());
    let pod = LinkerdPod::new(WEB, &plane).env("LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED", "true");
    let (mut ringside, _) = pod.start();
    ringside.wait_ready();
    assert_eq!(ringside.post("/shutdown").0, 200);
    let exited = ringside.wait_exit(Duration::from_secs(10));
    assert!(exited.is_some_and(|status| status.success()), "{exited:?}");
}

#[test]
fn a_shutdown_endpoint_value_that_is_not_a_boolean_stops_the_start() {
    let plane = ControlPlane::start(IdentityService::new());
    let pod = LinkerdPod::new(WEB, &plane).env("LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED", "no");
    let (status, stderr) = pod.refused();
    assert_eq!(status.code(), Some(64), "{stderr}");
    let expected = "LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED: expected true or false";
    assert!(stderr.contains(expected), "{stderr}");
}
