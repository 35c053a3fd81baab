//! A gRPC channel to one control-plane service, as linkerd2-proxy builds
//! it (`linkerd/app/core/src/control.rs`, `env.rs`'s `parse_control_addr`):
//!
//! - on loopback (`127.0.0.1`, `[::1]`, `localhost.`), plaintext HTTP/2;
//! - anywhere else, mTLS naming the service's `*_SVC_NAME`: the server's
//!   certificate must chain to our trust anchors and hold that name. No
//!   ALPN is offered (Linkerd offers none: the service's own proxy detects
//!   HTTP/2). Our certificate is presented once we have one, and until
//!   then none: the identity service is how we get one, so waiting for it
//!   first would never end (linkerd2-proxy `meshtls/src/creds.rs` starts
//!   with a client config without client auth for the same reason);
//! - a name (a headless service) resolves to every address (`resolve`),
//!   each its own HTTP/2 connection, and requests go to the less loaded of two picked
//!   at random (tower's p2c over pending requests). Linkerd balances its
//!   control clients with peak-EWMA; a control plane's few long streams
//!   make the count of pending ones a fair load here.
//!
//! tonic's own TLS always offers ALPN `h2` and takes a fixed client
//! certificate, and its balancer takes no custom connector: hence our
//! connector and our `Channel`, which tonic's generated clients take as
//! they take theirs (`IdentityClient::new(channel)`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tonic::body::Body;
use tower::load::{CompleteOnResponse, PendingRequests};
use tower::Service;

use super::resolve::{self, Names};
use crate::config::{ControlAddr, DnsConfig};
use crate::dns::{Lookups, ResolverConfigError};
use crate::tls::mesh::MeshConfigs;

/// A TCP connect and TLS handshake that take longer are given up, and
/// tried again by the channel's reconnect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Requests waiting for the balancer, per channel: a control plane has a
/// handful of streams in flight, so this only bounds a runaway caller.
const BUFFER: usize = 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ResponseFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, BoxError>> + Send>>;

/// A balanced gRPC channel to one control-plane service; cheap to clone,
/// as tonic's own. Its connections and balancer run as tasks on the
/// runtime it was built in (the control thread's).
#[derive(Clone)]
pub struct Channel {
    inner: tower::buffer::Buffer<http::Request<Body>, ResponseFuture>,
}

impl Service<http::Request<Body>> for Channel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> ResponseFuture {
        Box::pin(self.inner.call(request))
    }
}

/// How control-plane services are reached: the client TLS of their
/// connections (the mesh's, without ALPN) and the lookups of their names.
#[derive(Clone)]
pub struct Dialer {
    tls: Arc<ClientConfig>,
    names: Names,
}

impl Dialer {
    /// The mesh's client config (its trust anchors, its verifier that
    /// insists on the server's name, and our certificate resolver, which
    /// presents nothing until the first certificate) without ALPN or
    /// resumption, and
    /// `dns`'s resolver. Must be called within the runtime the channels
    /// will run on (hickory's resolver takes the one it is built in).
    pub fn new(mesh: &MeshConfigs, dns: &DnsConfig) -> Result<Dialer, ResolverConfigError> {
        let mut tls = (*mesh.client).clone();
        tls.alpn_protocols.clear();
        // A resumed session keeps the identity of the one it resumes: the
        // first, made before we had a certificate, would be anonymous for
        // good. linkerd2-proxy's control clients never resume either
        // (`meshtls/src/creds/store.rs`).
        tls.resumption = rustls::client::Resumption::disabled();
        let names = Names {
            lookups: Lookups::new(dns)?,
            config: Arc::new(dns.clone()),
        };
        Ok(Dialer {
            tls: Arc::new(tls),
            names,
        })
    }
}

/// A channel to `svc`. Must be called within the control thread's runtime
/// (in a task, or under `ControlThread::enter`): the balancer, the
/// resolution of the name and the connections run as its tasks, which
/// end when the last clone of the channel is dropped.
pub fn channel(svc: &ControlAddr, dialer: &Dialer) -> Channel {
    let tls = svc
        .server_name
        .as_ref()
        .map(|name| (name.clone(), dialer.tls.clone()));
    let endpoint = endpoints(svc.to_string(), tls);
    balanced(resolve::spawn(svc, &dialer.names, endpoint))
}

impl Channel {
    /// A plaintext channel to one address, for a control plane on
    /// loopback named by its address (the tests of `discovery`).
    /// Must be called within the runtime it will run on.
    pub fn plaintext(addr: SocketAddr) -> Channel {
        balanced(resolve::fixed(&[addr], endpoints(addr.to_string(), None)))
    }
}

/// One HTTP/2 connection per address, as tonic's channel keeps it (lazy,
/// reconnecting), its load the count of its requests still waiting for
/// their response.
type Endpoint = PendingRequests<tonic::transport::Channel, CompleteOnResponse>;

/// How an endpoint is made for an address: requests name `authority`;
/// connections are TLS naming `tls.0` when given.
fn endpoints(
    authority: String,
    tls: Option<(String, Arc<ClientConfig>)>,
) -> impl Fn(SocketAddr) -> Endpoint + Send + 'static {
    move |addr: SocketAddr| {
        let tls = tls.clone();
        let connector = tower::service_fn(move |_: http::Uri| connect(addr, tls.clone()));
        let uri = format!("http://{authority}");
        let endpoint = tonic::transport::Endpoint::from_shared(uri)
            .expect("a control address is a valid authority")
            .tcp_nodelay(true);
        let channel = tonic::transport::Channel::new(connector, endpoint);
        PendingRequests::new(channel, CompleteOnResponse::default())
    }
}

/// The endpoints `discover` brings, behind p2c and a buffer, whose worker
/// is a task of the current runtime.
fn balanced(discover: resolve::Discovered<Endpoint>) -> Channel {
    let balance = tower::balance::p2c::Balance::new(discover);
    let balance = tower::util::BoxService::new(balance);
    let (inner, worker) = tower::buffer::Buffer::pair(balance, BUFFER);
    tokio::spawn(worker);
    Channel { inner }
}

/// What a control-plane connection runs over, plaintext or TLS.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One connection to `addr`, over TLS naming `tls.0` when given.
async fn connect(
    addr: SocketAddr,
    tls: Option<(String, Arc<ClientConfig>)>,
) -> Result<TokioIo<Box<dyn Io>>, BoxError> {
    let connecting = async move {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let Some((name, config)) = tls else {
            return Ok::<Box<dyn Io>, BoxError>(Box::new(tcp));
        };
        let server_name = ServerName::try_from(name)?;
        let connector = tokio_rustls::TlsConnector::from(config);
        Ok(Box::new(connector.connect(server_name, tcp).await?))
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(io)) => Ok(TokioIo::new(io)),
        Ok(Err(err)) => Err(format!("{addr}: {err}").into()),
        Err(_) => Err(format!("{addr}: no connection within {CONNECT_TIMEOUT:?}").into()),
    }
}

#[cfg(test)]
#[path = "channel_tests.rs"]
mod tests;
