//! `TcpForward`: one accepted connection carried opaquely to an upstream
//! endpoint, from connect to close.
//!
//! The connection ends when both directions have ended (half-close is
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
use crate::config::{ForwardMode, Route};
use crate::metrics::{Peer, TcpCounters, TcpLabels};

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

/// One route as a shard sees it: its config, its balancer and the
/// client-side counters every connection on it shares.
pub struct RouteState {
    pub route: Route,
    pub balancer: Balancer,
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
        let src_counters = self.route.src_counters.clone();
        src_counters.opened();
        let result = self.forward(client).await;
        if let Err(err) = &result {
            tracing::warn!(side = err.side(), error = %err, "connection failed");
        } else {
            tracing::debug!("connection closed");
        }
        src_counters.closed(result.is_ok(), started.elapsed());
    }

    async fn forward(&self, client: TcpStream) -> Result<(), ForwardError> {
        let client = Socket::new(client).map_err(ForwardError::Proxy)?;
        let (index, upstream) = match self.connect().await {
            Ok(connected) => connected,
            Err(err) => {
                // The client must not mistake a refused upstream for an
                // empty answer: it sees a reset.
                client.reset_on_close();
                return Err(err);
            }
        };
        let endpoint = self.route.balancer.endpoint(index).addr;
        tracing::debug!(%endpoint, "upstream connected");
        let dst_counters = self.shard.metrics.tcp(TcpLabels {
            direction: self.route.route.direction,
            peer: Peer::Dst,
            target_addr: endpoint.to_string(),
        });
        dst_counters.opened();
        let started = Instant::now();

        let result = self.pump(&client, &upstream, &dst_counters).await;
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
        self.route.balancer.disconnected(index);
        dst_counters.closed(result.is_ok(), started.elapsed());
        result
    }

    async fn pump(
        &self,
        client: &Socket,
        upstream: &Socket,
        dst_counters: &TcpCounters,
    ) -> Result<(), ForwardError> {
        let src_counters = &*self.route.src_counters;
        let to_upstream = Direction {
            src: client,
            dst: upstream,
            src_counters,
            dst_counters,
        };
        let to_client = Direction {
            src: upstream,
            dst: client,
            src_counters: dst_counters,
            dst_counters: src_counters,
        };
        let pipes = &self.shard.pipes;
        match self.shard.forward_mode {
            ForwardMode::Splice => both(to_upstream.splice(pipes), to_client.splice(pipes)).await,
            ForwardMode::Copy => both(to_upstream.copy(), to_client.copy()).await,
        }
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
                    let reason = if err.kind() == std::io::ErrorKind::TimedOut {
                        "timeout"
                    } else {
                        "refused"
                    };
                    self.shard.metrics.connect_failed(addr.to_string(), reason);
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

async fn connect_endpoint(addr: SocketAddr, timeout: Duration) -> std::io::Result<Socket> {
    let stream = TcpStream::connect_timeout(addr, timeout)
        .await
        .map_err(std::io::Error::from)?;
    Socket::new(stream)
}
