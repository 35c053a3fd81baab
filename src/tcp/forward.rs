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

use super::balancer::Balancer;
use super::pump::{Direction, PumpError};
use super::socket::Socket;
use super::ShardContext;
use crate::config::{Protocol, Route};
use crate::detect::{sniff, SniffError, Verdict};
use crate::http::{self, H1Proxy, H2Proxy, HttpIo, HttpRoute};
use crate::metrics::{DetectLabels, Peer, TcpCounters, TcpLabels};

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

/// What the connection carries, as far as the opaque path cares.
struct Detected {
    /// Proxied as HTTP/1 rather than as opaque bytes.
    http1: bool,
    /// Proxied as HTTP/2 rather than as opaque bytes.
    http2: bool,
    /// `Some` for TLS passthrough, holding the SNI (empty when none).
    tls_sni: Option<String>,
    /// Client bytes detection consumed, to send upstream first.
    prefix: Vec<u8>,
}

impl Detected {
    fn opaque() -> Detected {
        Detected {
            http1: false,
            http2: false,
            tls_sni: None,
            prefix: Vec::new(),
        }
    }
}

fn opened(counters: Rc<TcpCounters>) -> Rc<TcpCounters> {
    counters.opened();
    counters
}

/// One route as a shard sees it: its config, its balancer and the
/// client-side counters every connection on it shares.
pub struct RouteState {
    pub route: Route,
    /// `route.listen` as the `target_addr` label, formatted once.
    pub listen_label: String,
    /// Balances connections (opaque TCP).
    pub balancer: Balancer,
    /// Balances requests and pools connections (HTTP).
    pub http: HttpRoute,
    pub src_counters: Rc<TcpCounters>,
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
        let (src_counters, result) = self.forward(client).await;
        if let Err(err) = &result {
            tracing::warn!(side = err.side(), error = %err, "connection failed");
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
    /// than mistake the refusal for an empty answer.
    async fn unreachable(
        &self,
        client: Socket,
        err: ForwardError,
    ) -> (Rc<TcpCounters>, Result<(), ForwardError>) {
        let verdict = match self.route.route.protocol {
            Protocol::Http1 => Some((Verdict::Http1, Vec::new())),
            Protocol::Http2 => Some((Verdict::Http2, Vec::new())),
            Protocol::Detect => match sniff(&client, None, &self.shard.detect).await {
                Ok(sniffed) => Some((sniffed.verdict, sniffed.prefix)),
                Err(_) => None,
            },
            Protocol::Opaque => None,
        };
        match verdict {
            Some((Verdict::Http1, prefix)) => {
                Box::pin(self.serve_http1(client, None, prefix)).await
            }
            Some((Verdict::Http2, prefix)) => {
                Box::pin(self.serve_http2(client, None, prefix)).await
            }
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
        let detected = match Box::pin(self.classify(&client, &upstream, endpoint)).await {
            Ok(detected) => detected,
            Err(err) => {
                upstream.reset_on_close();
                let plain = self.route.src_counters.clone();
                return (opened(plain), Err(ForwardError::ClientRead(err.0)));
            }
        };
        if detected.http1 {
            let dst_counters = self.shard.metrics.tcp(TcpLabels {
                direction: self.route.route.direction,
                peer: Peer::Dst,
                target_addr: endpoint.to_string(),
                tls_sni: None,
            });
            let first = http::upstream(upstream, dst_counters, index);
            return Box::pin(self.serve_http1(client, Some(first), detected.prefix)).await;
        }
        if detected.http2 {
            let first = Some((index, upstream));
            return Box::pin(self.serve_http2(client, first, detected.prefix)).await;
        }
        let (client, upstream) = (&client, &upstream);
        let src_counters = match &detected.tls_sni {
            None => self.route.src_counters.clone(),
            Some(_) => self.shard.metrics.tcp(TcpLabels {
                tls_sni: detected.tls_sni.clone(),
                ..self.src_labels()
            }),
        };
        let dst_counters = self.shard.metrics.tcp(TcpLabels {
            direction: self.route.route.direction,
            peer: Peer::Dst,
            target_addr: endpoint.to_string(),
            tls_sni: detected.tls_sni,
        });
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
    /// the outcome in `protocol_detect_total`.
    async fn classify(
        &self,
        client: &Socket,
        upstream: &Socket,
        endpoint: SocketAddr,
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
                return Ok(Detected::opaque());
            }
            // Configured, not detected. HTTP/2 is carried as opaque bytes
            // until HTTP/2 proxying lands.
            Protocol::Http1 => {
                return Ok(Detected {
                    http1: true,
                    ..Detected::opaque()
                })
            }
            Protocol::Http2 => return Ok(Detected::opaque()),
            Protocol::Detect => {}
        }
        if self.shard.server_first.remembers(endpoint) {
            count("learned_server_first", None);
            return Ok(Detected::opaque());
        }
        let sniffed = match sniff(client, Some(upstream), &self.shard.detect).await {
            Ok(sniffed) => sniffed,
            Err(err) => {
                count("error", None);
                return Err(err);
            }
        };
        count(sniffed.verdict.label(), Some(sniffed.elapsed));
        match &sniffed.verdict {
            Verdict::ServerFirst => self.shard.server_first.remember(endpoint),
            Verdict::Timeout => tracing::info!(
                timeout = ?self.shard.detect.timeout,
                "no protocol detected in time: forwarding as opaque TCP"
            ),
            verdict => tracing::debug!(protocol = verdict.label(), "protocol detected"),
        }
        let http1 = sniffed.verdict == Verdict::Http1;
        let http2 = sniffed.verdict == Verdict::Http2;
        let tls_sni = match sniffed.verdict {
            Verdict::Tls { sni } => Some(sni.unwrap_or_default()),
            _ => None,
        };
        Ok(Detected {
            http1,
            http2,
            tls_sni,
            prefix: sniffed.prefix,
        })
    }

    fn src_labels(&self) -> TcpLabels {
        TcpLabels {
            direction: self.route.route.direction,
            peer: Peer::Src,
            target_addr: self.route.listen_label.clone(),
            tls_sni: None,
        }
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
        let mut client = HttpIo::new(client, src_counters.clone(), prefix);
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
