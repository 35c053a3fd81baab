//! The inbound port watches alone, against a mock of Linkerd's policy
//! controller (`support::mock_discovery::inbound`): a port follows the
//! `Server` the mock serves, shares one stream, and falls back to the
//! environment's default (`tests/linkerd_policy.rs` runs ringside by
//! them).

mod support;

use std::time::Duration;

use ringside::discovery::inbound::{InboundHandle, InboundProtocol, PortAnswer};
use ringside::discovery::Backoff;
use support::eventually;
use support::mock_discovery::inbound::{authz, default_routes, server_of, Proto, Who};
use support::mock_discovery::MockControlPlane;
use tokio::sync::watch;
use tonic::Code;

const WORKLOAD: &str = r#"{"ns":"watched-ns","pod":"watched-0"}"#;

fn watches(mock: &MockControlPlane, default: &str) -> InboundHandle {
    let backoff = Backoff {
        min: Duration::from_millis(10),
        max: Duration::from_millis(200),
    };
    let detect = Duration::from_secs(10);
    ringside::discovery::inbound::spawn(mock.addr, WORKLOAD, default, detect, backoff)
        .expect("the inbound policy thread")
}

fn port(handle: &InboundHandle, port: u16) -> watch::Receiver<PortAnswer> {
    handle
        .lookup(port)
        .blocking_recv()
        .expect("the thread answers")
}

fn server_name(receiver: &watch::Receiver<PortAnswer>) -> String {
    receiver.borrow().policy.name.to_string()
}

fn wait_for_server(receiver: &watch::Receiver<PortAnswer>, name: &str) {
    eventually(&format!("server {name}"), || server_name(receiver) == name);
}

#[test]
fn a_port_follows_its_server_and_falls_back_to_the_default() {
    let mock = MockControlPlane::start();
    let everyone: &[(&str, &[&str])] = &[("0.0.0.0/0", &[])];
    let open = authz("all", false, everyone, Who::Unauthenticated);
    mock.set_server(
        8080,
        Some(server_of(
            "web",
            false,
            Proto::Detect(default_routes(&["/ready"])),
            vec![open],
        )),
    );
    let handle = watches(&mock, "deny");
    let web = port(&handle, 8080);
    wait_for_server(&web, "web");
    let answer = web.borrow().clone();
    assert!(answer.settled);
    assert_eq!(
        answer.policy.protocol,
        InboundProtocol::Detect {
            timeout: Duration::from_secs(10)
        }
    );
    assert_eq!(answer.policy.routes.len(), 2, "default and probe");
    assert_eq!(mock.watched_ports(), [format!("8080 {WORKLOAD}")]);

    // Changed mid-run: the open stream brings it.
    mock.set_server(
        8080,
        Some(server_of("web-opaque", false, Proto::Opaque, vec![])),
    );
    wait_for_server(&web, "web-opaque");
    assert_eq!(web.borrow().policy.protocol, InboundProtocol::Opaque);
    // The same port again shares the stream.
    let again = port(&handle, 8080);
    assert_eq!(server_name(&again), "web-opaque");
    assert_eq!(mock.watched_ports().len(), 1);

    // A port the service has nothing for yet: the default until it has.
    let admin = port(&handle, 4191);
    eventually("the first call answered", || admin.borrow().settled);
    assert_eq!(server_name(&admin), "deny");
    mock.set_server(
        4191,
        Some(server_of("admin", false, Proto::Http1(vec![]), vec![])),
    );
    wait_for_server(&admin, "admin");

    // A `Server` past a bound: Linkerd's invalid policy, refusing all.
    let open = || authz("all", false, everyone, Who::Unauthenticated);
    let too_many = (0..=64).map(|_| open()).collect();
    mock.set_server(
        8080,
        Some(server_of("too-many", false, Proto::Opaque, too_many)),
    );
    wait_for_server(&web, "invalid");
    assert!(web.borrow().policy.authorizations.is_empty());

    // INVALID_ARGUMENT: the default, for good.
    mock.fail_port(8080, Code::InvalidArgument);
    mock.break_streams();
    wait_for_server(&web, "deny");
}

#[test]
fn with_the_service_down_the_default_is_settled_at_once_and_the_answer_taken_later() {
    let mock = MockControlPlane::start();
    mock.set_down(true);
    let handle = watches(&mock, "all-authenticated");
    let web = port(&handle, 8080);
    eventually("the failed first call settles the port", || {
        web.borrow().settled
    });
    assert_eq!(server_name(&web), "all-authenticated");
    mock.set_server(
        8080,
        Some(server_of("web", false, Proto::Http2(vec![]), vec![])),
    );
    mock.set_down(false);
    wait_for_server(&web, "web");
    // Down again: the last answer is kept.
    mock.set_down(true);
    mock.break_streams();
    let calls = mock.calls(support::mock_discovery::Call::WatchPort);
    eventually("a reconnection tried", || {
        mock.calls(support::mock_discovery::Call::WatchPort) > calls + 1
    });
    assert_eq!(server_name(&web), "web");
}
