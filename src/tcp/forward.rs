//! `TcpForward`: the life of one accepted connection. It connects to an
//! endpoint the connection balancer picks, applies the route's protocol
//! policy (detection where it applies), then either hands the connection to
//! the HTTP/1 or HTTP/2 proxy or carries it as opaque bytes.
//!
//! An opaque connection ends when both directions have ended (half-close is
//! honoured: each direction ends with its own FIN) or when either side
//! fails; a reset or error on one side is passed on as a reset on the other.
//! Its metrics and its one log line come from the same `ForwardError`.

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::net::TcpStream;

use super::pump::{Direction, PumpError};
use super::socket::Socket;
use super::ShardContext;
use crate::balance::ConnectionBalancer;
use crate::config::{Protocol, Route};
use crate::detect::{sniff, SniffError, Verdict};
use crate::http::{self, Arrival, H1Proxy, H2Proxy, HttpIo, HttpRoute};
use crate::metrics::{DetectLabels, Peer, ShardMetrics, TcpCounters, TcpLabels};

/// How many endpoints one connection tries before it gives up.
const MAX_CONNECT_ATTEMPTS: usize = 3;

/// Why a connection ended badly, and on which side.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("client read failed: {0}")]
    ClientRead(std::io::Error),
    #[error("client write failed: {0}")]
    ClientWrite(std::io::Error),
    #[error("upstream read failed: {0}")]
    UpstreamRead(std::io::Error),
    #[error("upstream write failed: {0}")]
    UpstreamWrite(std::io::Error),
    #[error("no upstream endpoint reachable after {attempts} attempts, last {last}: {cause}")]
    Connect {
        attempts: usize,
        last: SocketAddr,
        cause: std::io::Error,
    },
    #[error("proxy error: {0}")]
    Proxy(std::io::Error),
}

impl ForwardError {
    /// Which side of the proxy failed: the client, the upstream, or ringside.
    pub fn side(&self) -> &'static str {
        match self {
            ForwardError::ClientRead(_) | ForwardError::ClientWrite(_) => "client",
            ForwardError::UpstreamRead(_)
            | ForwardError::UpstreamWrite(_)
            | ForwardError::Connect { .. } => "upstream",
            ForwardError::Proxy(_) => "proxy",
        }
    }
}

/// How a connection is carried, as the protocol policy and detection decide.
#[derive(Debug, PartialEq, Eq)]
enum Carry {
    /// Bytes both ways; `tls_sni` is `Some` (the SNI, empty when none) for
    /// TLS passed through.
    Opaque {
        tls_sni: Option<String>,
    },
    Http1,
    Http2,
}

struct Detected {
    carry: Carry,
    /// Client bytes detection consumed, to send upstream first.
    prefix: Vec<u8>,
}

impl Detected {
    fn configured(carry: Carry) -> Detected {
        Detected {
            carry,
            prefix: Vec::new(),
        }
    }
}

fn opened(counters: Rc<TcpCounters>) -> Rc<TcpCounters> {
    counters.opened();
    counters
}

/// One route as a shard sees it: its config, its balancers and pools, and
/// the counters its connections share, looked up once here rather than per
/// connection.
pub struct RouteState {
    pub route: Route,
    /// `route.listen` as the `target_addr` label, formatted once.
    pub listen_label: String,
    /// Balances connections (opaque TCP).
    pub balancer: ConnectionBalancer,
    /// Balances requests and pools connections (HTTP).
    pub http: HttpRoute,
    /// Client-side counters (`peer="src"`) of plain connections.
    pub src_counters: Rc<TcpCounters>,
    /// Upstream-side counters (`peer="dst"`), by endpoint index.
    pub dst_counters: Vec<Rc<TcpCounters>>,
}

impl RouteState {
    pub fn new(
        route: Route,
        metrics: &ShardMetrics,
        seed: u64,
        pool_idle_timeout: Duration,
    ) -> RouteState {
        let listen_label = route.listen.to_string();
        let labels = |peer, target_addr: String| TcpLabels {
            direction: route.direction,
            peer,
            target_addr,
            tls_sni: None,
        };
        RouteState {
            src_counters: metrics.tcp(labels(Peer::Src, listen_label.clone())),
            dst_counters: route
                .upstreams
                .iter()
                .map(|upstream| metrics.tcp(labels(Peer::Dst, upstream.to_string())))
                .collect(),
            balancer: ConnectionBalancer::new(&route.upstreams, seed),
            http: HttpRoute::new(&route.upstreams, seed.rotate_left(17), pool_idle_timeout),
            listen_label,
            route,
        }
    }

    /// The counters of a TLS passthrough connection: its SNI is a label,
    /// so they are looked up per connection.
    fn tls_counters(
        &self,
        metrics: &ShardMetrics,
        peer: Peer,
        index: usize,
        sni: &str,
    ) -> Rc<TcpCounters> {
        let target_addr = match peer {
            Peer::Src => self.listen_label.clone(),
            Peer::Dst => self.route.upstreams[index].to_string(),
        };
        metrics.tcp(TcpLabels {
            direction: self.route.direction,
            peer,
            target_addr,
            tls_sni: Some(sni.to_string()),
        })
    }
}

pub struct TcpForward {
    shard: Rc<ShardContext>,
    route: Rc<RouteState>,
}

impl TcpForward {
    pub fn new(shard: Rc<ShardContext>, route: Rc<RouteState>) -> TcpForward {
        TcpForward { shard, route }
    }

    /// Carries `client` until both sides are done; counts and logs its end.
    pub async fn run(self, client: TcpStream) {
        let started = Instant::now();
        // Taken now: a reset socket no longer has a peer address.
        let peer = client.peer_addr().ok();
        let (src_counters, result) = self.forward(client).await;
        if let Err(err) = &result {
            let client = peer.map_or_else(|| "?".to_string(), |addr| addr.to_string());
            tracing::warn!(
                shard = self.shard.metrics.shard(),
                %client,
                target = %self.route.route.listen,
                side = err.side(),
                error = %err,
                "connection failed"
            );
        } else {
            tracing::debug!("connection closed");
        }
        src_counters.closed(result.is_ok(), started.elapsed());
    }

    /// Returns the client-side counters the connection was counted under
    /// (they depend on what detection found) with its outcome.
    async fn forward(&self, client: TcpStream) -> (Rc<TcpCounters>, Result<(), ForwardError>) {
        let plain = self.route.src_counters.clone();
        let client = match Socket::new(client) {
            Ok(client) => client,
            Err(err) => return (opened(plain), Err(ForwardError::Proxy(err))),
        };
        let (index, upstream) = match Box::pin(self.connect()).await {
            Ok(connected) => connected,
            // Boxed, like the HTTP paths below: an opaque connection's task
            // must not carry the (much larger) state of paths it never takes.
            Err(err) => return Box::pin(self.unreachable(client, err)).await,
        };
        let outcome = self.carry(client, upstream, index).await;
        self.route.balancer.disconnected(index);
        outcome
    }

    /// No endpoint could be connected. An HTTP/1 client still gets an
    /// answer it can read (a 502 or 503 saying why, from the HTTP path,
    /// which tries the endpoints again); anything else sees a reset rather
    /// No endpoint could be connected. An HTTP client still gets an answer
    /// it can read (a 502 or 503 saying why, from the HTTP path, which tries
    /// the endpoints again); anything else sees a reset rather than mistake
    /// the refusal for an empty answer.
    async fn unreachable(
        &self,
        client: Socket,
        err: ForwardError,
    ) -> (Rc<TcpCounters>, Result<(), ForwardError>) {
        match self.classify(&client, None).await {
            Ok(Detected {
                carry: Carry::Http1,
                prefix,
            }) => Box::pin(self.serve_http1(client, None, prefix)).await,
            Ok(Detected {
                carry: Carry::Http2,
                prefix,
            }) => Box::pin(self.serve_http2(client, None, prefix)).await,
            _ => {
                client.reset_on_close();
                (opened(self.route.src_counters.clone()), Err(err))
            }
        }
    }

    /// Detects the protocol, then proxies HTTP/1 request by request or
    /// forwards opaque bytes both ways until both end.
    async fn carry(
        &self,
        client: Socket,
        upstream: Socket,
        index: usize,
    ) -> (Rc<TcpCounters>, Result<(), ForwardError>) {
        let endpoint = self.route.balancer.endpoint(index).addr;
        tracing::debug!(%endpoint, "upstream connected");
        let detected = match Box::pin(self.classify(&client, Some((&upstream, endpoint)))).await {
            Ok(detected) => detected,
            Err(err) => {
                upstream.reset_on_close();
                let plain = self.route.src_counters.clone();
                return (opened(plain), Err(ForwardError::ClientRead(err.0)));
            }
        };
        let tls_sni = match detected.carry {
            Carry::Http1 => {
                let first = http::upstream(upstream, self.route.dst_counters[index].clone(), index);
                return Box::pin(self.serve_http1(client, Some(first), detected.prefix)).await;
            }
            Carry::Http2 => {
                let first = Some((index, upstream));
                return Box::pin(self.serve_http2(client, first, detected.prefix)).await;
            }
            Carry::Opaque { tls_sni } => tls_sni,
        };
        let (client, upstream) = (&client, &upstream);
        let metrics = &self.shard.metrics;
        let (src_counters, dst_counters) = match &tls_sni {
            None => (
                self.route.src_counters.clone(),
                self.route.dst_counters[index].clone(),
            ),
            Some(sni) => (
                self.route.tls_counters(metrics, Peer::Src, index, sni),
                self.route.tls_counters(metrics, Peer::Dst, index, sni),
            ),
        };
        src_counters.opened();
        dst_counters.opened();
        let started = Instant::now();

        let mut result = Ok(());
        if !detected.prefix.is_empty() {
            // Bytes detection read out of the client go first.
            src_counters.read(detected.prefix.len());
            result = upstream
                .write_all(&detected.prefix)
                .await
                .map_err(ForwardError::UpstreamWrite);
            if result.is_ok() {
                dst_counters.wrote(detected.prefix.len());
            }
        }
        if result.is_ok() {
            result = tunnel(&self.shard, client, upstream, &src_counters, &dst_counters).await;
        }
        if let Err(err) = &result {
            // Pass the failure on: the side that did not fail sees a reset.
            match err.side() {
                "client" => upstream.reset_on_close(),
                "upstream" => client.reset_on_close(),
                _ => {
                    client.reset_on_close();
                    upstream.reset_on_close();
                }
            }
        }
        dst_counters.closed(result.is_ok(), started.elapsed());
        (src_counters, result)
    }

    /// The route's protocol policy, then detection where it applies; counts
    /// the outcome in `protocol_detect_total`. `upstream` is the connected
    /// endpoint, watched for a server that speaks first (none when no
    /// endpoint could be reached).
    async fn classify(
        &self,
        client: &Socket,
        upstream: Option<(&Socket, SocketAddr)>,
    ) -> Result<Detected, SniffError> {
        let count = |result: &'static str, duration: Option<Duration>| {
            let labels = DetectLabels {
                direction: self.route.route.direction,
                target_addr: self.route.listen_label.clone(),
                result,
            };
            self.shard.metrics.detected(labels, duration);
        };
        match self.route.route.protocol {
            Protocol::Opaque => {
                count("opaque_port", None);
                return Ok(Detected::configured(Carry::Opaque { tls_sni: None }));
            }
            // Configured, not detected.
            Protocol::Http1 => return Ok(Detected::configured(Carry::Http1)),
            Protocol::Http2 => return Ok(Detected::configured(Carry::Http2)),
            Protocol::Detect => {}
        }
        let endpoint = upstream.map(|(_, endpoint)| endpoint);
        if endpoint.is_some_and(|endpoint| self.shard.server_first.remembers(endpoint)) {
            count("learned_server_first", None);
            return Ok(Detected::configured(Carry::Opaque { tls_sni: None }));
        }
        let upstream = upstream.map(|(socket, _)| socket);
        let detecting = self.shard.metrics.detecting();
        let sniffed = sniff(client, upstream, &self.shard.detect).await;
        drop(detecting);
        let sniffed = match sniffed {
            Ok(sniffed) => sniffed,
            Err(err) => {
                count("error", None);
                return Err(err);
            }
        };
        count(sniffed.verdict.label(), Some(sniffed.elapsed));
        match (&sniffed.verdict, endpoint) {
            (Verdict::ServerFirst, Some(endpoint)) => self.shard.server_first.remember(endpoint),
            (Verdict::Timeout, _) => tracing::info!(
                timeout = ?self.shard.detect.timeout,
                "no protocol detected in time: forwarding as opaque TCP"
            ),
            (verdict, _) => tracing::debug!(protocol = verdict.label(), "protocol detected"),
        }
        let carry = match sniffed.verdict {
            Verdict::Http1 => Carry::Http1,
            Verdict::Http2 => Carry::Http2,
            Verdict::Tls { sni } => Carry::Opaque {
                tls_sni: Some(sni.unwrap_or_default()),
            },
            _ => Carry::Opaque { tls_sni: None },
        };
        Ok(Detected {
            carry,
            prefix: sniffed.prefix,
        })
    }

    /// HTTP/2: streams are proxied over pooled upstream connections; `first`,
    /// the upstream connected during detection, becomes one of them.
    async fn serve_http2(
        &self,
        client: Socket,
        first: Option<(usize, Socket)>,
        prefix: Vec<u8>,
    ) -> (Rc<TcpCounters>, Result<(), ForwardError>) {
        let src_counters = opened(self.route.src_counters.clone());
        src_counters.read(prefix.len());
        let proxy = H2Proxy {
            shard: self.shard.clone(),
            route: self.route.clone(),
        };
        let result = proxy
            .serve(client, prefix, src_counters.clone(), first)
            .await;
        (src_counters, result)
    }

    /// HTTP/1: the connection is served request by request; `first`, the
    /// upstream connected during detection, serves the first request.
    async fn serve_http1(
        &self,
        client: Socket,
        first: Option<http::Upstream>,
        prefix: Vec<u8>,
    ) -> (Rc<TcpCounters>, Result<(), ForwardError>) {
        let src_counters = opened(self.route.src_counters.clone());
        src_counters.read(prefix.len());
        let mut client =
            HttpIo::new(client, src_counters.clone(), prefix).expecting(Arrival::Waiting);
        let proxy = H1Proxy {
            shard: &self.shard,
            route: &self.route,
        };
        let result = proxy.serve(&mut client, first).await;
        if let Err(err) = &result {
            if err.side() == "upstream" {
                // A cut response must not look complete to the client.
                client.socket.reset_on_close();
            }
        }
        (src_counters, result)
    }

    /// Connects to an endpoint chosen by the balancer, trying others when
    /// one refuses or times out.
    async fn connect(&self) -> Result<(usize, Socket), ForwardError> {
        let balancer = &self.route.balancer;
        let attempts = MAX_CONNECT_ATTEMPTS.min(balancer.len());
        let mut tried = Vec::with_capacity(attempts);
        let mut last_error = None;
        while tried.len() < attempts {
            let Some(index) = balancer.pick(&tried) else {
                break;
            };
            tried.push(index);
            let addr = balancer.endpoint(index).addr;
            let started = Instant::now();
            match connect_endpoint(addr, self.shard.connect_timeout).await {
                Ok(stream) => {
                    balancer.connected(index, started.elapsed());
                    return Ok((index, stream));
                }
                Err(err) => {
                    tracing::debug!(endpoint = %addr, error = %err, "upstream connect failed");
                    balancer.failed(index);
                    self.shard.metrics.connect_failed(addr, &err);
                    last_error = Some((addr, err));
                }
            }
        }
        let (last, cause) = last_error.expect("every route has at least one upstream");
        Err(ForwardError::Connect {
            attempts: tried.len(),
            last,
            cause,
        })
    }
}

/// Forwards opaque bytes both ways between `client` and `upstream` until
/// both directions end (half-close aware), or one fails.
pub async fn tunnel(
    shard: &ShardContext,
    client: &Socket,
    upstream: &Socket,
    client_counters: &TcpCounters,
    upstream_counters: &TcpCounters,
) -> Result<(), ForwardError> {
    let to_upstream = Direction {
        src: client,
        dst: upstream,
        src_counters: client_counters,
        dst_counters: upstream_counters,
    };
    let to_client = Direction {
        src: upstream,
        dst: client,
        src_counters: upstream_counters,
        dst_counters: client_counters,
    };
    let (mode, pumps) = (shard.forward_mode, &shard.pumps);
    both(to_upstream.run(mode, pumps), to_client.run(mode, pumps)).await
}

/// Runs both directions until both end, or until the first fails (the
/// other is then dropped), naming the side of the failure.
async fn both(
    to_upstream: impl Future<Output = Result<(), PumpError>>,
    to_client: impl Future<Output = Result<(), PumpError>>,
) -> Result<(), ForwardError> {
    let up = async {
        to_upstream.await.map_err(|err| match err {
            PumpError::Read(e) => ForwardError::ClientRead(e),
            PumpError::Write(e) => ForwardError::UpstreamWrite(e),
            PumpError::Pipe(e) => ForwardError::Proxy(e),
        })
    };
    let down = async {
        to_client.await.map_err(|err| match err {
            PumpError::Read(e) => ForwardError::UpstreamRead(e),
            PumpError::Write(e) => ForwardError::ClientWrite(e),
            PumpError::Pipe(e) => ForwardError::Proxy(e),
        })
    };
    future::try_zip(up, down).await.map(|_| ())
}

pub async fn connect_endpoint(addr: SocketAddr, timeout: Duration) -> std::io::Result<Socket> {
    let stream = TcpStream::connect_timeout(addr, timeout)
        .await
        .map_err(std::io::Error::from)?;
    Socket::new(stream)
}
