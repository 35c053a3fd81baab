//! A mock of Linkerd's control plane, built from the `linkerd2-proxy-api`
//! crate's server traits and served by tonic on a thread of its own with
//! a tokio runtime: the identity service now (`identity`); destination and
//! policy join it. It can be stopped and served again on the same
//! address, or start down, for the tests of a control plane that is not
//! there. And a pod as Linkerd's injector and identity wrapper make it
//! (`LinkerdPod`): a folder with `key.p8` and `csr.der`, a token file, and
//! the `LINKERD2_PROXY_*` environment, which is all ringside is given.

pub mod identity;
pub mod tls;

use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::thread::JoinHandle;

use linkerd2_proxy_api::identity::identity_server::IdentityServer;
use tokio::sync::oneshot;

pub use identity::{IdentityService, TOKEN};
pub use tls::{Seen, ServerTls};

use super::{Ringside, TempDir, BIN};

/// The mock control plane, serving on loopback: plaintext, as a proxy
/// reaches a control plane on loopback, or over TLS (`ControlPlane::tls`)
/// for the tests of one reached by name.
pub struct ControlPlane {
    pub addr: SocketAddr,
    pub identity: IdentityService,
    /// The server side of TLS, when served over TLS.
    pub tls: Option<ServerTls>,
    serving: Option<Serving>,
    /// While down: its port, bound but not listening, so connections are
    /// refused and no other test can take the port before `resume`.
    reserved: Option<socket2::Socket>,
}

struct Serving {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl ControlPlane {
    /// Serving on a port of its own, bound once: a port given up and bound
    /// again could be taken in between by a test running beside it.
    pub fn start(identity: IdentityService) -> ControlPlane {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut plane = ControlPlane {
            addr: listener.local_addr().unwrap(),
            identity,
            tls: None,
            serving: None,
            reserved: None,
        };
        plane.serve(listener);
        plane
    }

    /// Not serving yet: its port is bound but not listening, so
    /// connections are refused until `resume` listens on it.
    pub fn down(identity: IdentityService) -> ControlPlane {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket");
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        socket.bind(&any_port.into()).expect("a port");
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        ControlPlane {
            addr,
            identity,
            tls: None,
            serving: None,
            reserved: Some(socket),
        }
    }

    /// Serving over TLS on `addr` (port 0: a port of its own), presenting
    /// `name` under the identity service's CA.
    pub fn tls(identity: IdentityService, addr: &str, name: &str) -> ControlPlane {
        let listener = TcpListener::bind(addr).unwrap();
        let tls = Some(ServerTls::new(identity.ca(), name));
        let mut plane = ControlPlane {
            addr: listener.local_addr().unwrap(),
            identity,
            tls,
            serving: None,
            reserved: None,
        };
        plane.serve(listener);
        plane
    }

    /// The handshakes its clients made, oldest first (TLS only).
    pub fn seen(&self) -> Vec<Seen> {
        let tls = self.tls.as_ref().expect("served over TLS");
        tls.seen.lock().unwrap().clone()
    }

    /// Serves (again) on its address: on the port `down` kept, else bound
    /// again.
    pub fn resume(&mut self) {
        let listener = match self.reserved.take() {
            Some(socket) => {
                socket.listen(128).expect("listening on the kept port");
                socket.into()
            }
            None => TcpListener::bind(self.addr).expect("the control plane's port is free"),
        };
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        assert!(self.serving.is_none(), "already serving");
        listener.set_nonblocking(true).unwrap();
        let identity = self.identity.clone();
        let tls = self.tls.clone();
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            // The test clients' current-thread runtime.
            super::clients::h2::runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let router = tonic::transport::Server::builder()
                    .add_service(IdentityServer::new(identity));
                // Stopping drops the server and every connection with it.
                match tls {
                    None => {
                        let incoming = tonic::transport::server::TcpIncoming::from(listener);
                        tokio::select! {
                            served = router.serve_with_incoming(incoming) => served.unwrap(),
                            _ = stopped => {}
                        }
                    }
                    Some(tls) => {
                        tokio::select! {
                            served = router.serve_with_incoming(tls_incoming(listener, tls)) => served.unwrap(),
                            _ = stopped => {}
                        }
                    }
                }
            });
        });
        self.serving = Some(Serving { stop, thread });
    }

    /// Stops serving: open connections are closed, new ones refused.
    pub fn stop(&mut self) {
        if let Some(serving) = self.serving.take() {
            let _ = serving.stop.send(());
            serving.thread.join().unwrap();
        }
    }
}

/// Each connection's handshake in a task of its own (a stalled client
/// holds no other back), the finished ones in order of completion.
fn tls_incoming(
    listener: tokio::net::TcpListener,
    tls: ServerTls,
) -> impl futures_util::Stream<Item = std::io::Result<tls::Tls>> {
    let (accepted, incoming) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (tls, accepted) = (tls.clone(), accepted.clone());
            tokio::spawn(async move {
                if let Ok(stream) = tls.accept(tcp).await {
                    let _ = accepted.send(Ok(stream));
                }
            });
        }
    });
    futures_util::stream::unfold(incoming, |mut incoming| async move {
        incoming.recv().await.map(|item| (item, incoming))
    })
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A pod as Linkerd injects it, for identity `name`, whose control plane
/// is `plane`: what the identity wrapper wrote, and the environment.
pub struct LinkerdPod {
    pub name: String,
    /// `LINKERD2_PROXY_IDENTITY_DIR` (`key.p8`, `csr.der`) and the token.
    pub dir: TempDir,
    vars: Vec<(String, String)>,
    /// The group ringside runs under, which a pod's redirect exempts.
    gid: Option<u32>,
}

impl LinkerdPod {
    /// Listeners on loopback port 0, one shard, renewals at most 1 s
    /// apart (`IDENTITY_MIN_REFRESH`: a failed request is tried again
    /// after it), and the control plane's services on loopback.
    pub fn new(name: &str, plane: &ControlPlane) -> LinkerdPod {
        let dir = TempDir::new();
        let (key, csr) = ringside::tls::mint::signing_request(name).unwrap();
        std::fs::create_dir_all(dir.join("end-entity")).unwrap();
        std::fs::write(dir.join("end-entity/key.p8"), key).unwrap();
        std::fs::write(dir.join("end-entity/csr.der"), csr).unwrap();
        std::fs::write(dir.join("token"), TOKEN).unwrap();
        let addr = plane.addr.to_string();
        let vars = [
            ("IDENTITY_DIR", dir.join("end-entity")),
            ("IDENTITY_TOKEN_FILE", dir.join("token")),
            (
                "IDENTITY_TRUST_ANCHORS",
                plane.identity.trust_anchors().into(),
            ),
            ("IDENTITY_LOCAL_NAME", name.into()),
            ("IDENTITY_SVC_ADDR", addr.clone()),
            ("IDENTITY_MIN_REFRESH", "1s".into()),
            ("DESTINATION_SVC_ADDR", addr.clone()),
            (
                "DESTINATION_CONTEXT",
                "{\"ns\":\"default\",\"pod\":\"web-0\"}".into(),
            ),
            ("POLICY_SVC_ADDR", addr),
            (
                "POLICY_WORKLOAD",
                "{\"ns\":\"default\",\"pod\":\"web-0\"}".into(),
            ),
            ("INBOUND_LISTEN_ADDR", "127.0.0.1:0".into()),
            ("OUTBOUND_LISTEN_ADDRS", "127.0.0.1:0".into()),
            ("ADMIN_LISTEN_ADDR", "127.0.0.1:0".into()),
            ("CORES", "1".into()),
        ];
        let vars = vars
            .into_iter()
            .map(|(name, value)| (format!("LINKERD2_PROXY_{name}"), value))
            .collect();
        LinkerdPod {
            name: name.to_string(),
            dir,
            vars,
            gid: None,
        }
    }

    /// Runs ringside under group `gid` (`support::Pod::redirect` exempts
    /// its own connections by it).
    pub fn gid(mut self, gid: u32) -> LinkerdPod {
        self.gid = Some(gid);
        self
    }

    /// The destination and policy services at `addr`, on loopback.
    pub fn discovery(self, addr: SocketAddr) -> LinkerdPod {
        let addr = addr.to_string();
        self.env("LINKERD2_PROXY_DESTINATION_SVC_ADDR", &addr)
            .env("LINKERD2_PROXY_POLICY_SVC_ADDR", &addr)
    }

    /// Sets (or replaces) a variable.
    pub fn env(mut self, name: &str, value: &str) -> LinkerdPod {
        self.vars.retain(|(set, _)| set != name);
        self.vars.push((name.to_string(), value.to_string()));
        self
    }

    /// The identity service reached by a name (not loopback: over mTLS
    /// naming `svc_name`), which `dns` answers for and ringside asks
    /// (`RINGSIDE_DNS_SERVERS`: the host's resolv.conf knows no test name).
    pub fn identity_by_name(
        self,
        name: &str,
        port: u16,
        svc_name: &str,
        dns: &super::dns_server::DnsServer,
    ) -> LinkerdPod {
        self.env(
            "LINKERD2_PROXY_IDENTITY_SVC_ADDR",
            &format!("{name}.:{port}"),
        )
        .env("LINKERD2_PROXY_IDENTITY_SVC_NAME", svc_name)
        .env("RINGSIDE_DNS_SERVERS", &dns.addr().to_string())
    }

    /// ringside with no argument and only this environment, as Linkerd's
    /// wrapper starts the proxy; returns once it listens, with what it
    /// printed before its `listening` lines.
    pub fn start(&self) -> (Ringside, Vec<String>) {
        Ringside::without_arguments(self.command())
    }

    /// `start`, with ringside's log followed (`support::output`).
    pub fn start_logged(&self) -> (Ringside, super::output::Output) {
        let (ringside, _, log) = Ringside::without_arguments_logged(self.command());
        (ringside, log)
    }

    /// ringside with no argument and only this environment.
    pub fn command(&self) -> Command {
        let mut command = Command::new(BIN);
        command.env_clear().envs(self.vars.iter().cloned());
        if let Some(gid) = self.gid {
            std::os::unix::process::CommandExt::gid(&mut command, gid);
        }
        command
    }

    /// ringside as `start` would run it, when it must refuse to: its exit
    /// status and what it said on stderr.
    pub fn refused(&self) -> (std::process::ExitStatus, String) {
        let output = Command::new(BIN)
            .env_clear()
            .envs(self.vars.iter().cloned())
            .output()
            .unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into(),
        )
    }
}

/// A meshed connection to a pod's inbound listener, as a Linkerd peer
/// makes one: TLS 1.3 naming the pod's identity, ALPN
/// `transport.l5d.io/v1`, a client certificate of `ca` for `client`
/// (`None`: none), then the transport header for `port`. Returns the
/// stream and the leaf the pod presented (DER).
pub fn mesh_connect(
    inbound: SocketAddr,
    pod: &str,
    ca: &ringside::tls::mint::Minted,
    client: Option<&str>,
    port: u16,
) -> (
    rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
    Vec<u8>,
) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::Write;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some(client) => {
            let validity = ringside::tls::mint::Validity::days_from_now(1);
            let leaf = ringside::tls::mint::issue(ca, client, None, validity).unwrap();
            let chain = vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()];
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
            config.with_client_auth_cert(chain, key).unwrap()
        }
        None => config.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ringside::tls::ALPN.to_vec()];
    let name = rustls::pki_types::ServerName::try_from(pod.to_string()).unwrap();
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(inbound).unwrap();
    tcp.set_read_timeout(Some(super::WAIT_LIMIT)).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    let header = ringside::tls::TransportHeader {
        port,
        name: None,
        protocol: None,
    };
    stream.write_all(&header.encode()).unwrap();
    stream.flush().unwrap();
    let presented = stream
        .conn
        .peer_certificates()
        .expect("the pod presented a certificate");
    let leaf = presented[0].to_vec();
    (stream, leaf)
}
