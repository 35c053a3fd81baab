//! ringside started as Linkerd's identity wrapper starts its proxy: no
//! argument, only `LINKERD2_PROXY_*` in its environment, `key.p8` and
//! `csr.der` in `LINKERD2_PROXY_IDENTITY_DIR`. Its certificate comes from
//! a mock of Linkerd's identity service (tests/support/control_plane) on
//! loopback, which really signs the CSR. `/ready`, `/metrics` and the
//! certificate its inbound listener presents are what the tests look at.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use support::control_plane::{mesh_connect, ControlPlane, IdentityService, LinkerdPod};
use support::dns_server::DnsServer;
use support::{eventually, Origin, Ringside};

const WEB: &str = "web.default.serviceaccount.identity.linkerd.cluster.local";
const DB: &str = "db.default.serviceaccount.identity.linkerd.cluster.local";
const CLIENT: &str = "client.default.serviceaccount.identity.linkerd.cluster.local";

/// Bytes no detector takes for HTTP or TLS: carried at once.
const OPAQUE: &[u8] = b"\x00\x01opaque bytes\x00";

const EXPIRY: &str = "identity_cert_expiration_timestamp_seconds";
const FAILURES: &str = "ringside_identity_reload_failures_total";

/// The leaf's `notAfter`, in Unix seconds.
fn not_after(der: &[u8]) -> f64 {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.validity().not_after.timestamp() as f64
}

fn ready(ringside: &Ringside) -> (u16, String) {
    ringside.get("/ready")
}

/// Echoes `data` over a meshed stream and returns what came back.
fn echo(stream: &mut impl ReadWrite, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).unwrap();
    stream.flush().unwrap();
    let mut back = vec![0; data.len()];
    stream.read_exact(&mut back).unwrap();
    back
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[test]
fn certified_by_linkerds_identity_service_and_ready() {
    let plane = ControlPlane::start(IdentityService::new());
    let pod = LinkerdPod::new(WEB, &plane).env("LINKERD2_PROXY_TAP_SVC_NAME", "tap.linkerd");
    let (ringside, said) = pod.start();
    assert_eq!(
        said.first().map(String::as_str),
        Some(
            format!(
                "linkerd mode: identity {WEB} from {0}, destination {0}, policy {0}",
                plane.addr
            )
            .as_str()
        ),
        "{said:?}"
    );
    ringside.wait_ready();
    let issued = plane.identity.issued();
    assert_eq!(issued.len(), 1, "one certificate, issued for the CSR");
    let metrics = ringside.metrics();
    assert_eq!(metrics.sum(EXPIRY, &[]), not_after(&issued[0]));
    assert_eq!(metrics.sum(FAILURES, &[]), 0.0);

    // The inbound listener presents it to a peer of the same CA, and
    // carries the peer's bytes to the port its header names.
    let app = Origin::echo();
    let inbound = ringside.transparent[1];
    let ca = plane.identity.ca();
    let (mut stream, presented) = mesh_connect(inbound, WEB, ca, Some(CLIENT), app.addr.port());
    assert_eq!(presented, issued[0]);
    assert_eq!(echo(&mut stream, OPAQUE), OPAQUE);
}

#[test]
fn renewal_keeps_open_connections_and_new_handshakes_get_the_new_certificate() {
    let plane = ControlPlane::start(IdentityService::new());
    // Renewal is due at 70% of what is left: after about 2.8 s.
    plane.identity.validity(Duration::from_secs(4));
    let pod = LinkerdPod::new(WEB, &plane);
    let (ringside, _) = pod.start();
    ringside.wait_ready();
    let first = plane.identity.issued()[0].clone();

    let app = Origin::echo();
    let (inbound, ca) = (ringside.transparent[1], plane.identity.ca());
    let (mut open, presented) = mesh_connect(inbound, WEB, ca, Some(CLIENT), app.addr.port());
    assert_eq!(presented, first);
    assert_eq!(echo(&mut open, OPAQUE), OPAQUE);

    plane.identity.validity(Duration::from_secs(3600));
    let mut renewed = None;
    eventually("a new handshake presenting the renewed certificate", || {
        let (_, presented) = mesh_connect(inbound, WEB, ca, Some(CLIENT), app.addr.port());
        let new = presented != first;
        renewed = new.then_some(presented);
        new
    });
    let renewed = renewed.unwrap();
    assert!(
        plane.identity.issued().contains(&renewed),
        "issued by the service"
    );
    assert_eq!(
        echo(&mut open, OPAQUE),
        OPAQUE,
        "the open connection goes on"
    );
    eventually("the expiry metric of the renewed certificate", || {
        ringside.metrics().sum(EXPIRY, &[]) == not_after(&renewed)
    });
    assert_eq!(ready(&ringside).0, 200);
}

#[test]
fn a_control_plane_down_at_start_leaves_it_unready_until_it_comes_up() {
    let mut plane = ControlPlane::down(IdentityService::new());
    let pod = LinkerdPod::new(WEB, &plane);
    let (ringside, _) = pod.start();
    assert_eq!(ready(&ringside), (503, "waiting for identity\n".into()));
    eventually("a failed certification counted", || {
        ringside.metrics().sum(FAILURES, &[]) >= 1.0
    });
    assert_eq!(ready(&ringside).0, 503);
    assert_eq!(ringside.metrics().sum(EXPIRY, &[]), 0.0);

    plane.resume();
    ringside.wait_ready();
    let issued = plane.identity.issued();
    assert_eq!(ringside.metrics().sum(EXPIRY, &[]), not_after(&issued[0]));
}

#[test]
fn a_certificate_for_another_name_is_refused_and_counted() {
    let plane = ControlPlane::start(IdentityService::new());
    plane.identity.answer_for(Some(DB));
    let pod = LinkerdPod::new(WEB, &plane);
    let (ringside, _) = pod.start();
    eventually("a refused answer counted", || {
        ringside.metrics().sum(FAILURES, &[]) >= 1.0
    });
    assert!(
        !plane.identity.issued().is_empty(),
        "the service did answer"
    );
    assert_eq!(
        ready(&ringside).0,
        503,
        "not ready on a certificate for {DB}"
    );
    assert_eq!(ringside.metrics().sum(EXPIRY, &[]), 0.0);

    plane.identity.answer_for(None);
    ringside.wait_ready();
}

#[test]
fn a_wrong_token_is_refused_by_the_service_and_a_new_one_is_read() {
    let plane = ControlPlane::start(IdentityService::new());
    let pod = LinkerdPod::new(WEB, &plane);
    let token = pod.dir.join("token");
    std::fs::write(&token, "a stale token").unwrap();
    let (ringside, _) = pod.start();
    eventually("a request refused for its token", || {
        plane.identity.refused() >= 1
    });
    assert_eq!(ready(&ringside).0, 503);
    // Kubernetes rewrites a projected token: the next request reads it.
    std::fs::write(&token, support::control_plane::TOKEN).unwrap();
    ringside.wait_ready();
}

#[test]
fn what_the_wrapper_did_not_write_stops_the_start_in_one_line() {
    let plane = ControlPlane::start(IdentityService::new());
    let pod = LinkerdPod::new(WEB, &plane);
    std::fs::remove_file(pod.dir.join("end-entity/csr.der")).unwrap();
    let (status, stderr) = pod.refused();
    assert!(!status.success());
    let line = stderr.lines().last().unwrap_or_default();
    assert!(line.contains("end-entity/csr.der: cannot read"), "{stderr}");

    let pod = LinkerdPod::new(WEB, &plane).env("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", "allow");
    let (status, stderr) = pod.refused();
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(
        stderr.starts_with("ringside: bad configuration: LINKERD2_PROXY_INBOUND_DEFAULT_POLICY: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// Linkerd's identity controller's own identity: what its service's
/// address must present (`LINKERD2_PROXY_IDENTITY_SVC_NAME`).
const IDENTITY_SVC: &str = "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local";
/// The identity service's headless name, as the test's DNS server has it.
const HEADLESS: &str = "linkerd-identity-headless.linkerd.test";

#[test]
fn a_control_plane_by_name_is_reached_over_mtls_naming_it_without_alpn() {
    let identity = IdentityService::new();
    // Renewals about every 1.4 s: the second certify presents the first
    // certificate.
    identity.validity(Duration::from_secs(2));
    let first = ControlPlane::tls(identity.clone(), "127.0.0.1:0", IDENTITY_SVC);
    let port = first.addr.port();
    let dns = DnsServer::start();
    // A name is no loopback, whatever it resolves to (only `localhost.`
    // is, as in Linkerd): mTLS, at every address the name has.
    dns.set_records(HEADLESS, &["127.0.0.1"], 1);
    let pod = LinkerdPod::new(WEB, &first).identity_by_name(HEADLESS, port, IDENTITY_SVC, &dns);
    let (ringside, said) = pod.start();
    assert!(
        said[0].contains(&format!("from {HEADLESS}.:{port}")),
        "{said:?}"
    );
    ringside.wait_ready();

    let seen = first.seen();
    assert!(!seen.is_empty());
    for handshake in &seen {
        assert_eq!(handshake.sni.as_deref(), Some(IDENTITY_SVC));
        assert!(
            !handshake.offered_alpn,
            "Linkerd's control clients offer no ALPN"
        );
    }
    assert_eq!(
        seen[0].client_certificate, None,
        "no certificate before the first"
    );
    let issued = first.identity.issued()[0].clone();
    eventually("a renewal presenting the first certificate", || {
        let seen = first.seen();
        seen.iter()
            .any(|h| h.client_certificate.as_ref() == Some(&issued))
    });

    // The name moves to another address (a new replica): renewals follow
    // it there.
    let second = ControlPlane::tls(identity.clone(), &format!("127.0.0.2:{port}"), IDENTITY_SVC);
    dns.set_records(HEADLESS, &["127.0.0.2"], 1);
    eventually("a renewal at the name's new address", || {
        !second.seen().is_empty()
    });
    let renewed = identity.issued().len();
    eventually("certified there", || identity.issued().len() > renewed);
    assert_eq!(ready(&ringside).0, 200);
}

#[test]
fn a_server_presenting_another_name_is_not_asked() {
    let identity = IdentityService::new();
    let impostor = ControlPlane::tls(identity.clone(), "127.0.0.1:0", DB);
    let dns = DnsServer::start();
    dns.set_records(HEADLESS, &["127.0.0.1"], 1);
    let port = impostor.addr.port();
    let pod = LinkerdPod::new(WEB, &impostor).identity_by_name(HEADLESS, port, IDENTITY_SVC, &dns);
    let (ringside, _) = pod.start();
    eventually("a refused handshake counted as a failure", || {
        ringside.metrics().sum(FAILURES, &[]) >= 1.0
    });
    assert!(
        identity.issued().is_empty(),
        "no CSR sent to a server of another name"
    );
    assert_eq!(ready(&ringside).0, 503);
}
