//! The inbound mesh stage on loopback sockets inside one executor: a mesh
//! peer's mTLS connection, made as a peer proxy makes it (`MeshTls::connect`
//! with the transport header), is terminated, authorized by the identity
//! it proved and carried to the application port the header names, with
//! that identity in `l5d-client-id`; a refused identity's HTTP is answered
//! 403; a plaintext client dialling the listener directly is reset.

use std::rc::Rc;
use std::time::Duration;

use super::*;
use crate::config::{
    Authorize, Cidr, Direction, ForwardTo, IdentityMatch, InboundPolicy, MeshPeer, Transparent,
};
use crate::io::testing::{self, read_head, Loopback};
use crate::proxy::testing::{mesh_configs, meshed_shard_with, OUR_NAME};

/// What a peer proxy dialling `inbound` sends for `app`'s port, once its
/// request is in: the answer's head.
async fn request_through_a_peer(
    peer: &MeshTls,
    shard: &Shard,
    inbound: std::net::SocketAddr,
    app: std::net::SocketAddr,
) -> String {
    let peer_entry = MeshPeer {
        network: Cidr {
            addr: inbound.ip(),
            prefix: 32,
        },
        identity: OUR_NAME.to_string(),
        port: inbound.port(),
    };
    let timeout = Duration::from_secs(5);
    let protocol = Some(SessionProtocol::Http1);
    let socket = peer
        .connect(app, &peer_entry, protocol, timeout, &shard.deadlines)
        .await
        .expect("the peer's mTLS connection");
    socket
        .write_all(b"GET /meshed HTTP/1.1\r\nHost: app\r\n\r\n")
        .await
        .unwrap();
    String::from_utf8(read_head(&socket).await.expect("an answer")).unwrap()
}

/// `policy` on every inbound port: the application's is bound to port 0
/// after the shard is made.
fn everywhere(policy: Authorize) -> InboundPolicy {
    InboundPolicy {
        default: policy,
        ports: Vec::new(),
    }
}

/// The transparent inbound listener's state for `listen`.
fn inbound_state(listen: std::net::SocketAddr) -> Rc<TransparentState> {
    let listener = Transparent {
        listen,
        direction: Direction::Inbound,
        forward_to: ForwardTo::Localhost,
    };
    let own: Rc<[std::net::SocketAddr]> = Rc::from(vec![listen]);
    Rc::new(TransparentState::new(
        listener,
        own,
        Duration::from_secs(60),
        None,
    ))
}

/// Accepts one connection on `listener` and serves it as the inbound
/// listener serves a direct one.
fn serve_one(shard: &Rc<Shard>, listener: Loopback) {
    let shard = shard.clone();
    crate::io::spawn(async move {
        let stream = listener.accept().await;
        let inbound = inbound_state(listener.addr());
        let mesh = shard.mesh().expect("a meshed shard");
        let slot = shard.connections.take(listener.addr()).unwrap();
        serve(shard, inbound, mesh, stream, slot).await;
    });
}

#[test]
fn a_peers_connection_reaches_the_application_port_with_its_identity() {
    let configs = mesh_configs();
    let allowed = Authorize::Identities(vec![IdentityMatch::Exact(OUR_NAME.to_string())]);
    let shard = Rc::new(meshed_shard_with(configs.clone(), everywhere(allowed)));
    let peer = MeshTls::new(configs, Vec::new(), shard.mesh().unwrap().policy.clone());
    testing::run_with(&shard.deadlines, || async {
        let app = Loopback::bind();
        let app_addr = app.addr();
        let seen = Rc::default();
        testing::http1_origin(app, "app", Rc::clone(&seen));
        let listener = Loopback::bind();
        let inbound = listener.addr();
        serve_one(&shard, listener);
        let head = request_through_a_peer(&peer, &shard, inbound, app_addr).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let seen = seen.borrow();
        let request = String::from_utf8_lossy(&seen[0]).to_ascii_lowercase();
        assert!(request.starts_with("get /meshed "), "{request}");
        let header = format!("l5d-client-id: {OUR_NAME}");
        assert!(request.contains(&header), "{request}");
    });
}

#[test]
fn a_peer_the_port_refuses_is_answered_403() {
    let configs = mesh_configs();
    let shard = Rc::new(meshed_shard_with(
        configs.clone(),
        everywhere(Authorize::Deny),
    ));
    let peer = MeshTls::new(configs, Vec::new(), shard.mesh().unwrap().policy.clone());
    testing::run_with(&shard.deadlines, || async {
        let app = Loopback::bind();
        let app_addr = app.addr();
        let seen = Rc::default();
        testing::http1_origin(app, "app", Rc::clone(&seen));
        let listener = Loopback::bind();
        let inbound = listener.addr();
        serve_one(&shard, listener);
        let head = request_through_a_peer(&peer, &shard, inbound, app_addr).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        assert!(seen.borrow().is_empty(), "the request reached the app");
    });
}

#[test]
fn a_plaintext_client_dialling_the_listener_is_reset_as_not_redirected() {
    let configs = mesh_configs();
    let shard = Rc::new(meshed_shard_with(configs, everywhere(Authorize::Deny)));
    testing::run_with(&shard.deadlines, || async {
        let listener = Loopback::bind();
        let (client, accepted) = listener.pair().await;
        let inbound = inbound_state(listener.addr());
        let mesh = shard.mesh().unwrap();
        let slot = shard.connections.take(listener.addr()).unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        serve(shard.clone(), inbound, mesh, accepted, slot).await;
        let mut buf = [0u8; 8];
        let read = client.read(&mut buf).await;
        let reset = matches!(&read, Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset);
        assert!(reset, "expected a reset, got {read:?}");
        let refused = shard.metrics.snapshot(0, 0).connections_refused;
        assert_eq!(
            refused.get("not_redirected").copied(),
            Some(1),
            "{refused:?}"
        );
    });
}
