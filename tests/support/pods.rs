//! Two pods in network namespaces, each with its application and its own
//! ringside sidecar, set up as a user would: `ringside iptables install`
//! inside each pod and no route configured (`Mesh`); with identities
//! minted for both (`meshed`); and the TLS clients the mTLS tests use.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use super::control_plane::LinkerdPod;
use super::*;

/// The group both sidecars run under, exempted by `--proxy-gid`.
pub const PROXY_GID: &str = "4140";

/// A pod's sidecar: Linkerd's ports (the namespace is the pod's own, so
/// fixed ports cannot collide), one shard.
pub const SIDECAR: [(&str, &str); 2] = [
    ("--outbound-listen", "127.0.0.1:4140"),
    ("--inbound-listen", "0.0.0.0:4143"),
];

/// Both pods, each with its sidecar running and its rules installed.
pub struct Mesh {
    pub pods: LinkedPods,
    pub a: Option<Ringside>,
    pub b: Option<Ringside>,
    /// Started as Linkerd's wrapper starts its proxy (`Mesh::linkerd`):
    /// their identity folders, kept while the sidecars run.
    linkerd: Vec<LinkerdPod>,
}

/// `addr`'s port (an origin started in pod B) at pod B's address.
pub fn in_pod_b(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(POD_B.parse().unwrap(), addr.port())
}

impl Mesh {
    /// What curl in pod A prints for `url`, the response head included
    /// (`-g`: an IPv6 address's brackets are not a curl glob).
    pub fn curl_from_a(&self, url: &str) -> String {
        let args = ["-sS", "-g", "-i", "--max-time", "10", url];
        self.pods.a.run("curl", &args)
    }

    /// curl in pod A POSTing `hello` over HTTP/2 (prior knowledge) to
    /// `url`: the HTTP version and status it got (`2 200`).
    pub fn http2_post_from_a(&self, url: &str) -> String {
        let format = "%{http_version} %{http_code}";
        let args = ["-sS", "--http2-prior-knowledge", "--max-time", "10"];
        let args = [&args[..], &["-o", "/dev/null", "-w", format]].concat();
        let args = [&args[..], &["--data-binary", "hello", url]].concat();
        self.pods.a.run("curl", &args)
    }

    /// `None` after a SKIP line when this machine has no namespaces.
    /// `install` adds flags to both pods' `ringside iptables install`.
    pub fn start(test: &str, tag: &str, install: &[&str]) -> Option<Mesh> {
        let same = |launch| launch;
        Mesh::start_with(test, tag, install, [&same, &same])
    }

    /// `start`, with each pod's sidecar also given what `sidecar` adds
    /// (A's first).
    pub fn start_with(
        test: &str,
        tag: &str,
        install: &[&str],
        sidecar: [&(dyn Fn(Launch) -> Launch + Sync); 2],
    ) -> Option<Mesh> {
        let pods = LinkedPods::create(test, tag)?;
        let [a, b] = [(&pods.a, sidecar[0]), (&pods.b, sidecar[1])].map(|(pod, extra)| {
            let proxy = pod.enter(|| {
                let mut launch = Launch::new().gid(PROXY_GID.parse().unwrap()).shards(1);
                for (flag, value) in SIDECAR {
                    launch = launch.arg(flag, value);
                }
                extra(launch).start()
            });
            install_rules(pod, install);
            proxy
        });
        Some(Mesh {
            a: Some(a),
            b: Some(b),
            pods,
            linkerd: Vec::new(),
        })
    }

    /// Both pods' sidecars started as Linkerd's wrapper starts its proxy:
    /// no arguments, only `linkerd`'s environment (A's first), which is
    /// given Linkerd's ports (`SIDECAR`'s) and run under `PROXY_GID`.
    pub fn linkerd(pods: LinkedPods, linkerd: [LinkerdPod; 2]) -> Mesh {
        let [a, b] = linkerd.map(|linkerd| {
            linkerd
                .env("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS", SIDECAR[0].1)
                .env("LINKERD2_PROXY_INBOUND_LISTEN_ADDR", SIDECAR[1].1)
                .gid(PROXY_GID.parse().unwrap())
        });
        let [proxy_a, proxy_b] = [(&pods.a, &a), (&pods.b, &b)].map(|(pod, linkerd)| {
            let proxy = pod.enter(|| {
                let (proxy, _) = linkerd.start();
                proxy.wait_ready();
                proxy
            });
            install_rules(pod, &[]);
            proxy
        });
        Mesh {
            a: Some(proxy_a),
            b: Some(proxy_b),
            pods,
            linkerd: vec![a, b],
        }
    }

    /// Runs `client` inside pod A: its connections are A's application's.
    pub fn in_a<T: Send>(&self, client: impl FnOnce() -> T + Send) -> T {
        self.pods.a.enter(client)
    }

    /// Starts `server` inside pod B: its application.
    pub fn in_b<T: Send>(&self, server: impl FnOnce() -> T + Send) -> T {
        self.pods.b.enter(server)
    }

    /// Both sidecars' metrics once they have no open connection, A's first.
    pub fn metrics(&self) -> (Metrics, Metrics) {
        let a = self.in_a(|| self.a.as_ref().unwrap().wait_idle());
        let b = self.in_b(|| self.b.as_ref().unwrap().wait_idle());
        (a, b)
    }
}

/// `ringside iptables install` in `pod`, with `install` added. The
/// listeners' ports come from the flags the sidecars have (`SIDECAR`):
/// the rules and the listeners cannot disagree.
fn install_rules(pod: &super::netns::Netns, install: &[&str]) {
    let mut args = vec![SIDECAR[0].0, SIDECAR[0].1, SIDECAR[1].0, SIDECAR[1].1];
    args.extend(["iptables", "install", "--proxy-gid", PROXY_GID]);
    args.extend(install);
    pod.run(BIN, &args);
}

/// One request to the application at `app` (an address in pod B) counted
/// by both sidecars: outbound in A, inbound in B, both with the original
/// destination as `target_addr`. Waited for, not read once: the response
/// is counted as its last byte leaves, and A's pooled connection keeps one
/// inbound connection open in B, so neither side goes idle.
pub fn assert_one_request_on_both_sides(mesh: &Mesh, app: SocketAddr) {
    let target = app.to_string();
    let outbound = [("direction", "outbound"), ("target_addr", target.as_str())];
    let inbound = [("direction", "inbound"), ("target_addr", target.as_str())];
    let sides = [
        (&mesh.pods.a, &mesh.a, outbound),
        (&mesh.pods.b, &mesh.b, inbound),
    ];
    for (pod, proxy, labels) in sides {
        let proxy = proxy.as_ref().unwrap();
        let mut seen = 0.0;
        eventually(
            &format!("a response to {target} counted in {}", pod.name),
            || {
                seen = pod.enter(|| proxy.metrics()).sum("response_total", &labels);
                seen >= 1.0
            },
        );
        assert_eq!(seen, 1.0, "{target} in {}", pod.name);
    }
}

/// The identities of the two pods' workloads.
pub const A_ID: &str = "a.default.serviceaccount.identity.linkerd.cluster.local";
pub const B_ID: &str = "b.default.serviceaccount.identity.linkerd.cluster.local";

/// Both sidecars with an identity; A's knows B's pod as a mesh peer when
/// `a_knows_b`; B's gets `b_flags` too.
pub fn meshed(
    test: &str,
    tag: &str,
    dir: &TempDir,
    a_knows_b: bool,
    b_flags: &[(&str, &str)],
) -> Option<Mesh> {
    meshed_installing(test, tag, dir, a_knows_b, b_flags, &[])
}

/// `meshed`, with `install` added to both pods' `ringside iptables install`.
pub fn meshed_installing(
    test: &str,
    tag: &str,
    dir: &TempDir,
    a_knows_b: bool,
    b_flags: &[(&str, &str)],
    install: &[&str],
) -> Option<Mesh> {
    let peer = format!("{POD_B}={B_ID}");
    let a = |launch: Launch| {
        let launch = launch.identity(dir, "a", A_ID);
        match a_knows_b {
            true => launch.arg("--mesh-peer", &peer),
            false => launch,
        }
    };
    let b = |launch: Launch| {
        let launch = launch.identity(dir, "b", B_ID);
        b_flags
            .iter()
            .fold(launch, |launch, (flag, value)| launch.arg(flag, value))
    };
    Mesh::start_with(test, tag, install, [&a, &b])
}

/// The first flight of a TLS client for `sni`, as rustls sends it.
pub fn client_hello(sni: &str) -> Vec<u8> {
    let config = client_config_builder()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    hello
}

/// A blocking mTLS client with the identity in `dir/folder`, for `server`.
pub fn mtls_client<S: std::io::Read + std::io::Write>(
    dir: &TempDir,
    folder: &str,
    server: &str,
    tcp: S,
) -> rustls::StreamOwned<rustls::ClientConnection, S> {
    let (roots, chain, key) = super::identity::pem_identity(dir, folder);
    let config = client_config_builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from(server.to_string()).unwrap();
    let client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    rustls::StreamOwned::new(client, tcp)
}

pub fn client_config_builder() -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>
{
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
}
