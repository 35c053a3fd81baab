//! In-process harness for the connection stage's tests: the shard (with
//! a mesh and an inbound policy when a test needs one), a route to a
//! loopback origin, and a `Conn` carrying an accepted loopback socket,
//! all inside one executor (`io::testing::run_with` on the shard's
//! deadlines).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use rustls::pki_types::UnixTime;

use super::conn::Conn;
use super::RouteState;
use crate::config::{
    Authorize, Direction, IdentityConfig, InboundPolicy, PortRange, Protocol, Route, Upstream,
};
use crate::io::testing::Loopback;
use crate::io::Socket;
use crate::metrics::Peer;
use crate::shard::Shard;
use crate::tls::identity::{Identity, IdentityPem};
use crate::tls::mesh::{MeshConfigs, MeshTls};
use crate::tls::mint::{self, Validity};
use crate::tls::rustls_config::{client_config, server_config, CertResolver, TrustAnchors};

/// This proxy's mesh identity in the tests.
pub(super) const OUR_NAME: &str = "web.default.serviceaccount.identity.linkerd.cluster.local";

/// A route from `listen` to `upstream` with `protocol`.
pub(super) fn route(
    shard: &Shard,
    listen: SocketAddr,
    upstream: SocketAddr,
    direction: Direction,
    protocol: Protocol,
) -> Rc<RouteState> {
    let route = Route {
        listen,
        upstreams: vec![Upstream::Addr(upstream)],
        direction,
        protocol,
        response_timeout: None,
        detect_timeout: None,
    };
    let mesh = shard.mesh();
    let mesh = mesh.as_deref();
    let idle = Duration::from_secs(60);
    Rc::new(RouteState::new(route, &shard.metrics, 1, idle, mesh))
}

/// A shard with the default configuration and a mesh identity, whose
/// inbound ports are open to anyone except `port`, which `policy` guards.
pub(super) fn meshed_shard(port: u16, policy: Authorize) -> Shard {
    let range = PortRange {
        first: port,
        last: port,
    };
    let policy = InboundPolicy {
        default: Authorize::AllUnauthenticated,
        ports: vec![(vec![range], policy)],
    };
    meshed_shard_with(mesh_configs(), policy)
}

/// A shard with the default configuration, the mesh identity of
/// `configs` (which a peer of it in the test may share) and `policy`.
pub(super) fn meshed_shard_with(configs: MeshConfigs, policy: InboundPolicy) -> Shard {
    let mut shard = Shard::for_tests();
    shard.set_mesh(MeshTls::new(configs, Vec::new(), policy));
    shard
}

/// TLS configs around an identity minted in memory for `OUR_NAME`.
pub(super) fn mesh_configs() -> MeshConfigs {
    let validity = Validity::days_from_now(1);
    let ca = mint::ca(validity).unwrap();
    let leaf = mint::issue(&ca, OUR_NAME, None, validity).unwrap();
    let config = IdentityConfig {
        cert: "cert.pem".into(),
        key: "key.pem".into(),
        trust_anchors: "anchors.pem".into(),
        name: OUR_NAME.to_string(),
        spiffe_id: None,
    };
    let pem = IdentityPem {
        cert: leaf.cert_pem.as_bytes(),
        key: leaf.key_pem.as_bytes(),
        trust_anchors: ca.cert_pem.as_bytes(),
    };
    let identity = Identity::from_pem(&config, &pem, UnixTime::now()).unwrap();
    let anchors = TrustAnchors::new(identity.roots()).unwrap();
    let resolver = CertResolver::new(&identity);
    MeshConfigs {
        name: OUR_NAME.to_string(),
        server: server_config(anchors.clone(), resolver.clone()).unwrap(),
        client: client_config(anchors, resolver).unwrap(),
    }
}

/// A connection of `route`, holding one of the shard's slots.
pub(super) fn conn(shard: &Rc<Shard>, route: &Rc<RouteState>) -> Conn {
    let slot = shard.connections.take(route.route.listen).expect("a slot");
    Conn::new(shard.clone(), route.clone(), slot)
}

/// A client connected through the proxy: its accepted side is carried by
/// a `Conn` of `route` on its own task, as the accept loop does.
pub(super) async fn client_through(shard: &Rc<Shard>, route: &Rc<RouteState>) -> Socket {
    let (client, accepted) = Loopback::bind().pair().await;
    let conn = conn(shard, route);
    crate::io::spawn(conn.run(accepted, None));
    client
}

/// The `tcp_*` figures of the connections on `peer`'s side labelled
/// `target`, summed over their other labels.
pub(super) fn tcp_totals(shard: &Shard, peer: Peer, target: SocketAddr) -> TcpTotals {
    let snapshot = shard.metrics.snapshot(0, 0);
    let target = target.to_string();
    let mut totals = TcpTotals::default();
    for (labels, tcp) in &snapshot.tcp {
        if labels.peer == peer && labels.target_addr == target {
            totals.open += tcp.open_total;
            totals.closed_ok += tcp.close_success_total;
            totals.closed_failed += tcp.close_failure_total;
            totals.read_bytes += tcp.read_bytes_total;
            totals.written_bytes += tcp.write_bytes_total;
        }
    }
    totals
}

/// What `tcp_totals` sums.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct TcpTotals {
    pub open: u64,
    pub closed_ok: u64,
    pub closed_failed: u64,
    pub read_bytes: u64,
    pub written_bytes: u64,
}
