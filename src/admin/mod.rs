//! The admin shard: its own thread and glommio executor, off the proxy
//! cores' queues. It serves `/metrics`, `/ready`, `/live` and `/shards`,
//! asks every shard for a snapshot on each scrape and merges them, and turns
//! SIGTERM/SIGINT into a drain of every shard.

mod http;

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::shared_channel::{
    ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;
use glommio::timer::timeout;

use crate::metrics::{encode, ProcessStats, Snapshot};
use crate::runtime::{AsyncSignals, ShardRequest, Shared, Signals};
use http::{Request, Response};

/// A request that takes longer than this to arrive is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// The admin side of one shard's channels.
pub struct ShardLink {
    pub requests: SharedSender<ShardRequest>,
    pub replies: SharedReceiver<Box<Snapshot>>,
}

pub struct AdminInit {
    pub listener: socket2::Socket,
    pub addr: SocketAddr,
    pub shards: Vec<ShardLink>,
    pub shared: Shared,
    pub signals: Signals,
}

struct ConnectedLink {
    requests: ConnectedSender<ShardRequest>,
    replies: ConnectedReceiver<Box<Snapshot>>,
}

struct Admin {
    shards: Vec<ConnectedLink>,
    shared: Shared,
    /// One scrape at a time: replies on a shard's channel must not
    /// interleave between two scrapes.
    scrape: Semaphore,
}

pub async fn run(init: AdminInit) {
    let mut shards = Vec::with_capacity(init.shards.len());
    for link in init.shards {
        shards.push(ConnectedLink {
            requests: link.requests.connect().await,
            replies: link.replies.connect().await,
        });
    }
    let admin = Rc::new(Admin {
        shards,
        shared: init.shared,
        scrape: Semaphore::new(1),
    });

    let signals = init.signals.into_async();
    glommio::spawn_local(drain_on_signal(signals, admin.clone())).detach();

    // SAFETY: the fd comes from a socket2 socket we own, bound and
    // listening; ownership moves into the glommio listener.
    let listener = unsafe { TcpListener::from_raw_fd(init.listener.into_raw_fd()) };
    tracing::info!(addr = %init.addr, "admin server listening");
    loop {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(serve(stream, admin.clone())).detach();
            }
            Err(err) => {
                tracing::warn!(error = %err, "admin accept failed");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn drain_on_signal(mut signals: AsyncSignals, admin: Rc<Admin>) {
    if let Err(err) = signals.recv().await {
        tracing::error!(error = %err, "signal pipe failed");
        return;
    }
    tracing::info!("signal received: draining (a second signal exits at once)");
    admin.shared.draining.store(true, Ordering::SeqCst);
    for shard in &admin.shards {
        let _ = shard.requests.send(ShardRequest::Drain).await;
    }
}

async fn serve(mut stream: TcpStream, admin: Rc<Admin>) {
    let request = match timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await {
        Ok(request) => request,
        Err(_) => return,
    };
    let response = match request {
        Some(request) => admin.respond(&request).await,
        None => Response::text(400, "bad request\n"),
    };
    let _ = stream.write_all(&response.into_bytes()).await;
    let _ = stream.close().await;
}

/// Reads one request head; `None` for anything that is not a parsable
/// request within the size limit.
async fn read_request(
    stream: &mut TcpStream,
) -> Result<Option<Request>, glommio::GlommioError<()>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        match Request::parse(&buf) {
            Ok(Some(request)) => return Ok(Some(request)),
            Ok(None) if buf.len() < MAX_REQUEST_BYTES => continue,
            _ => return Ok(None),
        }
    }
}

impl Admin {
    async fn respond(&self, request: &Request) -> Response {
        if request.method != "GET" && request.method != "HEAD" {
            return Response::text(405, "only GET and HEAD\n");
        }
        let response = match request.path.as_str() {
            "/live" => Response::text(200, "live\n"),
            "/ready" => self.ready(),
            "/metrics" => {
                let snapshot = self.collect().await;
                let mut body = String::with_capacity(16 * 1024);
                encode(&snapshot, &ProcessStats::read(), &mut body);
                Response::new(200, "text/plain; version=0.0.4", body)
            }
            "/shards" => Response::new(200, "application/json", shards_json(&self.collect().await)),
            _ => Response::text(404, "not found: try /metrics, /ready, /live or /shards\n"),
        };
        if request.method == "HEAD" {
            response.without_body()
        } else {
            response
        }
    }

    fn ready(&self) -> Response {
        let started = self.shared.shards_started.load(Ordering::SeqCst);
        if self.shared.draining.load(Ordering::SeqCst) {
            Response::text(503, "draining\n")
        } else if started < self.shards.len() {
            Response::text(503, "starting\n")
        } else {
            Response::text(200, "ready\n")
        }
    }

    /// Asks every shard for its snapshot and merges them. A shard that has
    /// already finished draining simply does not contribute.
    async fn collect(&self) -> Snapshot {
        let _turn = self.scrape.acquire_permit(1).await;
        let mut merged = Snapshot::default();
        let mut asked = Vec::with_capacity(self.shards.len());
        for shard in &self.shards {
            asked.push(shard.requests.send(ShardRequest::Snapshot).await.is_ok());
        }
        for (shard, asked) in self.shards.iter().zip(asked) {
            if !asked {
                continue;
            }
            if let Ok(Some(snapshot)) =
                timeout(REQUEST_TIMEOUT, async { Ok(shard.replies.recv().await) }).await
            {
                merged.merge(&snapshot);
            }
        }
        merged
    }
}

fn shards_json(snapshot: &Snapshot) -> String {
    let shards: Vec<String> = snapshot
        .shards
        .iter()
        .map(|s| {
            format!(
                "{{\"shard\":{},\"open_connections\":{},\"accepted_total\":{},\"read_bytes_total\":{},\"write_bytes_total\":{}}}",
                s.shard, s.open_connections, s.accepted_total, s.read_bytes_total, s.write_bytes_total
            )
        })
        .collect();
    format!("{{\"shards\":[{}]}}\n", shards.join(","))
}
