//! Outbound discovery against a mock of Linkerd's control plane
//! (`support::mock_discovery`): the discovery thread's snapshots follow
//! the policy, the profile and the endpoints the mock serves; NOT_FOUND
//! falls back as linkerd2-proxy's `discover.rs` does; a broken stream
//! keeps its last answer and reconnects. Then ringside in network-
//! namespace pods, started as Linkerd's wrapper starts its proxy (no
//! arguments, only `LINKERD2_PROXY_*`), certified by the mock identity
//! service (`support::control_plane`) and carrying its pod's outbound
//! connections as the mock's destination and policy services say.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringside::config::Cidr;
use ringside::discovery::{Backoff, CacheHandle, Discovered, DiscoveryConfig, Snapshot, Source};
use support::control_plane::{ControlPlane, IdentityService, LinkerdPod};
use support::eventually;
use support::mock_discovery::messages::{self, endpoint, Kind};
use support::mock_discovery::{Call, MockControlPlane};
use tokio::sync::watch;

const CONTEXT: &str = r#"{"ns":"client-ns","nodeName":"node-1"}"#;
const WORKLOAD: &str = r#"{"ns":"client-ns","pod":"client-0"}"#;
const IDENTITY: &str = "web.web-ns.serviceaccount.identity.linkerd.cluster.local";

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// The discovery thread against `mock`, profiles asked for 10.0.0.0/8.
fn discovery(mock: &MockControlPlane) -> CacheHandle {
    let config = DiscoveryConfig {
        context: CONTEXT.to_string(),
        profile_networks: vec![Cidr {
            addr: "10.0.0.0".parse().unwrap(),
            prefix: 8,
        }],
        workload: WORKLOAD.to_string(),
    };
    let backoff = Backoff {
        min: Duration::from_millis(10),
        max: Duration::from_millis(200),
    };
    ringside::discovery::spawn(mock.addr, config, backoff).expect("the discovery thread")
}

fn lookup(handle: &CacheHandle, original: SocketAddr) -> watch::Receiver<Snapshot> {
    handle
        .lookup(original)
        .blocking_recv()
        .expect("the discovery thread answers")
}

/// Waits until the snapshot satisfies `check`, and returns it.
fn wait_for(
    receiver: &watch::Receiver<Snapshot>,
    what: &str,
    check: impl Fn(&Discovered) -> bool,
) -> Arc<Discovered> {
    eventually(what, || receiver.borrow().as_deref().is_some_and(&check));
    receiver.borrow().clone().unwrap()
}

fn ports(discovered: &Discovered) -> Vec<u16> {
    discovered.endpoints.iter().map(|e| e.addr.port()).collect()
}

#[test]
fn a_balanced_backend_follows_the_endpoints_added_and_removed() {
    let mock = MockControlPlane::start();
    let original = addr("10.96.0.10:8080");
    let path = "web.web-ns.svc.cluster.local:8080";
    mock.set_policy(
        original,
        Some(messages::policy(Kind::Detect, messages::balancer(path))),
    );
    let meshed = endpoint(addr("10.1.0.1:8080"), Some(IDENTITY), Some(4143), true);
    let plain = endpoint(addr("10.1.0.2:8081"), None, None, false);
    mock.set_endpoints(path, vec![meshed, plain]);
    let handle = discovery(&mock);
    let receiver = lookup(&handle, original);
    let found = wait_for(&receiver, "two endpoints", |d| d.endpoints.len() == 2);
    assert_eq!(found.source, Source::Policy);
    assert_eq!(found.protocol, Some(ringside::config::Protocol::Detect));
    assert_eq!(found.detect_timeout, Some(Duration::from_secs(10)));
    let first = &found.endpoints[0];
    assert_eq!(first.identity.as_deref(), Some(IDENTITY));
    assert_eq!(first.tagged_port, Some(4143));
    assert_eq!(first.protocol, Some(ringside::config::ProtocolHint::Http2));
    let labels: Vec<String> = first
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert_eq!(labels, ["dst_pod=pod-8080", "dst_service=mock"]);
    let second = &found.endpoints[1];
    assert_eq!((second.identity.as_ref(), second.tagged_port), (None, None));
    // Churn: one added, then one removed.
    let third = endpoint(addr("10.1.0.3:8082"), Some(IDENTITY), Some(4143), false);
    let plain = endpoint(addr("10.1.0.2:8081"), None, None, false);
    mock.set_endpoints(path, vec![plain.clone(), third.clone()]);
    let found = wait_for(&receiver, "the first removed, a third added", |d| {
        ports(d) == [8081, 8082]
    });
    assert_eq!(found.endpoints[1].identity.as_deref(), Some(IDENTITY));
    mock.set_endpoints(path, vec![]);
    wait_for(&receiver, "no endpoints", |d| d.endpoints.is_empty());
    // What was asked: the workload and the context as configured, as-is.
    let requests = mock.requests();
    assert!(
        requests.contains(&format!("Watch {original} {WORKLOAD}")),
        "{requests:?}"
    );
    assert!(
        requests.contains(&format!("Get {path} {CONTEXT}")),
        "{requests:?}"
    );
    assert!(
        requests.contains(&format!("GetProfile {original} {CONTEXT}")),
        "{requests:?}"
    );
    // A second lookup shares the watches.
    let again = lookup(&handle, original);
    wait_for(&again, "the same answer", |d| d.endpoints.is_empty());
    assert_eq!(mock.calls(Call::Watch), 1);
}

#[test]
fn a_policy_not_found_falls_back_to_the_profile_then_to_the_original_address() {
    let mock = MockControlPlane::start();
    let handle = discovery(&mock);
    let profiled = addr("10.96.0.11:5432");
    let gateway = endpoint(addr("10.1.0.9:5432"), Some(IDENTITY), Some(4143), false);
    mock.set_profile(profiled, Some(messages::profile(Some(gateway), true)));
    let receiver = lookup(&handle, profiled);
    let found = wait_for(&receiver, "the profile's endpoint", |_| true);
    assert_eq!(found.source, Source::Profile);
    assert_eq!(found.protocol, Some(ringside::config::Protocol::Opaque));
    assert_eq!(ports(&found), [5432]);
    assert_eq!(found.endpoints[0].identity.as_deref(), Some(IDENTITY));
    // Neither knows it: the original address, without TLS.
    let unknown = addr("10.96.0.12:80");
    let found = wait_for(&lookup(&handle, unknown), "the original", |_| true);
    assert_eq!(found.source, Source::Original);
    assert_eq!(
        found.endpoints[..],
        [ringside::config::Endpoint::plain(unknown)]
    );
    // Outside the profile networks no profile is asked for.
    let egress = addr("192.0.2.1:443");
    let found = wait_for(&lookup(&handle, egress), "the original", |_| true);
    assert_eq!(found.source, Source::Original);
    let asked = mock.requests();
    assert!(
        !asked
            .iter()
            .any(|r| r.starts_with(&format!("GetProfile {egress}"))),
        "{asked:?}"
    );
    assert_eq!(mock.calls(Call::GetProfile), 2);
}

#[test]
fn a_broken_stream_keeps_the_last_answer_and_reconnects() {
    let mock = MockControlPlane::start();
    let original = addr("10.96.0.20:8080");
    let path = "api.ns.svc.cluster.local:8080";
    mock.set_policy(
        original,
        Some(messages::policy(Kind::Http1, messages::balancer(path))),
    );
    let first = endpoint(addr("10.1.1.1:8080"), None, None, false);
    mock.set_endpoints(path, vec![first]);
    let handle = discovery(&mock);
    let receiver = lookup(&handle, original);
    let before = wait_for(&receiver, "the first answer", |d| d.endpoints.len() == 1);
    let (gets, watches) = (mock.calls(Call::Get), mock.calls(Call::Watch));
    mock.set_down(true);
    mock.break_streams();
    eventually("the clients to try again while the mock is down", || {
        mock.calls(Call::Get) >= gets + 2 && mock.calls(Call::Watch) >= watches + 2
    });
    assert_eq!(
        receiver.borrow().as_deref(),
        Some(&*before),
        "the last answer holds while the control plane is down"
    );
    mock.set_down(false);
    let second = endpoint(addr("10.1.1.2:8080"), None, None, false);
    mock.set_endpoints(path, vec![second]);
    let after = wait_for(&receiver, "the new stream's answer", |d| {
        ports(d) == [8080] && d.endpoints[0].addr.ip().to_string() == "10.1.1.2"
    });
    assert_eq!(
        after.endpoints.len(),
        1,
        "replaced, not merged with the old stream's"
    );
}

#[test]
fn a_policy_taken_away_falls_back_and_a_forward_backend_is_one_endpoint() {
    let mock = MockControlPlane::start();
    let original = addr("10.96.0.30:6379");
    let target = endpoint(addr("10.1.2.1:6379"), Some(IDENTITY), Some(4143), false);
    mock.set_policy(
        original,
        Some(messages::policy(Kind::Opaque, messages::forward(target))),
    );
    let handle = discovery(&mock);
    let receiver = lookup(&handle, original);
    let found = wait_for(&receiver, "the forward endpoint", |d| {
        d.source == Source::Policy
    });
    assert_eq!(found.protocol, Some(ringside::config::Protocol::Opaque));
    assert_eq!(found.endpoints[0].addr, addr("10.1.2.1:6379"));
    mock.set_policy(original, None);
    let found = wait_for(&receiver, "the fallback", |d| d.source != Source::Policy);
    assert_eq!(
        found.endpoints[..],
        [ringside::config::Endpoint::plain(original)]
    );
}

// ringside carrying redirected connections as discovery says, in a network
// namespace of the test's own (as tests/transparent.rs): iptables sends
// the test's connections to 198.18.0.0/24 (the "services") to ringside's
// outbound listener; the mock's policies name endpoints on loopback, some
// behind a double of Linkerd's inbound (`support::linkerd_inbound`) with
// an identity, some plain.

use support::identity::SERVER;
use support::linkerd_inbound::LinkerdInbound;
use support::{
    echo_through, random_bytes, HttpClient, HttpOrigin, KeepAliveLoad, Origin, Pod, Ringside,
    TempDir, POD_ADDR,
};

/// The group ringside runs under, which the redirect rule exempts.
const RINGSIDE_GID: u32 = 4140;

/// Linkerd's identity service, and a folder with the server identity it
/// issued, for the inbound double of a meshed endpoint.
fn linkerd_identity() -> (ControlPlane, TempDir) {
    let plane = ControlPlane::start(IdentityService::new());
    let dir = plane.identity.issue_into(&[("server", SERVER)]);
    (plane, dir)
}

/// ringside as Linkerd's wrapper starts it (no arguments, only Linkerd's
/// environment): certified by `plane` as the client, its destinations
/// resolved by `mock`'s destination and policy services, its outbound
/// listener taking this namespace's connections to the services.
fn discovering_ringside(
    pod: &Pod,
    test: &str,
    mock: &MockControlPlane,
    plane: &ControlPlane,
) -> Option<Ringside> {
    let linkerd = LinkerdPod::new(IDENTITY, plane)
        .discovery(mock.addr)
        .env(
            "LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS",
            "198.18.0.0/24",
        )
        .env("LINKERD2_PROXY_DESTINATION_CONTEXT", CONTEXT)
        .env("LINKERD2_PROXY_POLICY_WORKLOAD", WORKLOAD)
        .gid(RINGSIDE_GID);
    let (proxy, _) = linkerd.start();
    proxy.wait_ready();
    pod.redirect(test, proxy.transparent[0].port(), RINGSIDE_GID)?;
    Some(proxy)
}

/// Two requests on one connection, both answered 200: the first goes on
/// the upstream connected while detecting, the second is balanced (and
/// upgraded, where the endpoint takes HTTP/1 over HTTP/2).
fn get_twice(target: SocketAddr) {
    let mut client = HttpClient::connect(target);
    for _ in 0..2 {
        assert_eq!(client.get("/size/10").expect("an answer").status, 200);
    }
}

#[test]
fn ringside_carries_opaque_and_http_to_discovered_endpoints_with_and_without_identity() {
    let test = "ringside_carries_opaque_and_http_to_discovered_endpoints";
    let Some(pod) = Pod::enter(test) else {
        return;
    };
    let (plane, dir) = linkerd_identity();
    let linkerd = LinkerdInbound::start(&dir, "server");
    let tagged = Some(linkerd.addr.port());
    let (echo, meshed_web, plain_web) = (
        Origin::echo(),
        HttpOrigin::start("meshed-web", Duration::ZERO),
        HttpOrigin::start("plain-web", Duration::ZERO),
    );
    let mock = MockControlPlane::start();
    // Opaque, meshed: over mTLS to the inbound double, with a header.
    let redis = addr("198.18.0.10:6379");
    let redis_endpoint = endpoint(echo.addr, Some(SERVER), tagged, false);
    mock.set_policy(
        redis,
        Some(messages::policy(
            Kind::Opaque,
            messages::forward(redis_endpoint),
        )),
    );
    // HTTP, meshed, balanced.
    let web = addr("198.18.0.11:80");
    mock.set_policy(
        web,
        Some(messages::policy(Kind::Detect, messages::balancer("web:80"))),
    );
    mock.set_endpoints(
        "web:80",
        vec![endpoint(meshed_web.addr, Some(SERVER), tagged, true)],
    );
    // HTTP/1 to a meshed endpoint without the h2 hint: not upgraded.
    let api = addr("198.18.0.13:80");
    let api_endpoint = endpoint(meshed_web.addr, Some(SERVER), tagged, false);
    mock.set_policy(
        api,
        Some(messages::policy(
            Kind::Http1,
            messages::forward(api_endpoint),
        )),
    );
    // HTTP, no identity: plaintext.
    let plain = addr("198.18.0.12:80");
    mock.set_policy(
        plain,
        Some(messages::policy(
            Kind::Http1,
            messages::balancer("plain:80"),
        )),
    );
    mock.set_endpoints(
        "plain:80",
        vec![endpoint(plain_web.addr, None, None, false)],
    );
    // Unknown to both: its original address, in plaintext.
    let egress_origin = Origin::echo_on(&format!("{POD_ADDR}:0"));
    let Some(proxy) = discovering_ringside(&pod, test, &mock, &plane) else {
        return;
    };

    let data = random_bytes(1 << 20, 23);
    assert!(echo_through(redis, &data) == data, "opaque bytes differ");
    assert_eq!(
        linkerd.opaque.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a header without a session protocol"
    );
    get_twice(web);
    assert_eq!(meshed_web.requests(), 2);
    let upgraded = || linkerd.http2.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        upgraded(),
        1,
        "the h2 hint: HTTP/1 over HTTP/2 with l5d-orig-proto"
    );
    get_twice(api);
    assert_eq!(meshed_web.requests(), 4);
    assert_eq!(upgraded(), 1, "no h2 hint: HTTP/1 as it is");
    get_twice(plain);
    assert_eq!(plain_web.requests(), 2);
    assert!(echo_through(egress_origin.addr, b"egress") == b"egress");
    assert_eq!(egress_origin.accepted(), 1);
    // An endpoint that is ringside's own listener is left out, not looped to.
    let looping = addr("198.18.0.14:80");
    let own = endpoint(proxy.transparent[0], None, None, false);
    mock.set_policy(
        looping,
        Some(messages::policy(Kind::Http1, messages::forward(own))),
    );
    let answer = HttpClient::connect(looping).get("/size/10");
    let status = answer.map(|response| response.status);
    assert!(status.is_none_or(|status| status == 503), "{status:?}");

    let metrics = proxy.wait_idle();
    let meshed = [
        ("direction", "outbound"),
        ("peer", "dst"),
        ("tls", "true"),
        ("server_id", SERVER),
    ];
    let echo_target = echo.addr.to_string();
    let mut to_echo = meshed.to_vec();
    to_echo.push(("target_addr", echo_target.as_str()));
    assert_eq!(
        metrics.sum("tcp_write_bytes_total", &to_echo),
        data.len() as f64
    );
    let plain_target = plain_web.addr.to_string();
    // The endpoint's metric labels, as `dst_*` labels.
    let plain_pod = format!("pod-{}", plain_web.addr.port());
    let no_tls = [
        ("direction", "outbound"),
        ("peer", "dst"),
        ("target_addr", plain_target.as_str()),
        ("dst_pod", plain_pod.as_str()),
        ("tls", "no_identity"),
        ("no_tls_reason", "not_provided_by_service_discovery"),
    ];
    assert_eq!(metrics.sum("tcp_open_total", &no_tls), 1.0);
    let requests = mock.requests();
    assert!(
        requests
            .iter()
            .any(|seen| seen.starts_with("Watch") && seen.contains(WORKLOAD)),
        "the policy watches name the environment's workload: {requests:?}"
    );
}

#[test]
fn endpoints_churned_under_load_lose_nothing() {
    let test = "endpoints_churned_under_load_lose_nothing";
    let Some(pod) = Pod::enter(test) else {
        return;
    };
    let (plane, _) = linkerd_identity();
    let origins: Vec<HttpOrigin> = ["a", "b", "c"]
        .into_iter()
        .map(|name| HttpOrigin::start(name, Duration::ZERO))
        .collect();
    let mock = MockControlPlane::start();
    let service = addr("198.18.0.20:8080");
    let path = "churn:8080";
    mock.set_policy(
        service,
        Some(messages::policy(Kind::Http1, messages::balancer(path))),
    );
    let set = |which: &[usize]| {
        let endpoints = which
            .iter()
            .map(|&i| endpoint(origins[i].addr, None, None, false))
            .collect();
        mock.set_endpoints(path, endpoints);
    };
    set(&[0, 1]);
    let Some(proxy) = discovering_ringside(&pod, test, &mock, &plane) else {
        return;
    };
    let load = KeepAliveLoad::start(service, 4);
    for round in [[1, 2], [2, 0], [0, 1], [1, 2]] {
        let before = origins[round[1]].requests();
        set(&round);
        // The newcomer is taken into the open connections' balancing.
        support::eventually("the new endpoint to be used", || {
            origins[round[1]].requests() > before + 10
        });
    }
    load.stop();
    let metrics = proxy.wait_idle();
    let failed = [("direction", "outbound"), ("classification", "failure")];
    assert_eq!(
        metrics.sum("response_total", &failed),
        0.0,
        "no failed response"
    );
    let succeeded = [("direction", "outbound"), ("classification", "success")];
    assert!(metrics.sum("response_total", &succeeded) > 40.0);
}

#[test]
fn with_the_control_plane_down_a_destination_goes_to_its_original_address_until_it_answers() {
    let test = "with_the_control_plane_down_a_destination_goes_to_its_original";
    let Some(pod) = Pod::enter(test) else {
        return;
    };
    let (plane, _) = linkerd_identity();
    let original = HttpOrigin::start_on(&format!("{POD_ADDR}:0"), "original", Duration::ZERO);
    let discovered = HttpOrigin::start("discovered", Duration::ZERO);
    let mock = MockControlPlane::start();
    mock.set_down(true);
    let to_discovered = endpoint(discovered.addr, None, None, false);
    let policy = messages::policy(Kind::Http1, messages::forward(to_discovered));
    mock.set_policy(original.addr, Some(policy));
    let Some(_proxy) = discovering_ringside(&pod, test, &mock, &plane) else {
        return;
    };
    // No answer within the discovery timeout: the original address.
    get_twice(original.addr);
    assert_eq!((original.requests(), discovered.requests()), (2, 0));
    mock.set_down(false);
    support::eventually("new connections to go where the policy says", || {
        get_twice(original.addr);
        discovered.requests() > 0
    });

    // Down mid-run, its streams broken: the last answer is kept.
    mock.set_down(true);
    mock.break_streams();
    let before = (original.requests(), discovered.requests());
    get_twice(original.addr);
    let after = (original.requests(), discovered.requests());
    assert_eq!(after, (before.0, before.1 + 2), "the last answer kept");
}
