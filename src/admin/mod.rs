//! The admin server: its own thread and executor, off the proxy cores'
//! queues. It serves `/metrics`, `/ready`, `/live` and `/shards` from
//! snapshots it asks the shards for (through [`Shards`], which the runtime
//! implements) and merges; it knows nothing else of the proxy.

mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::io::{sleep, spawn, timeout, AcceptFailures, Listener, Socket};
use crate::metrics::{encode, ProcessStats, Snapshot};
use wire::{Request, Response};

/// A request that takes longer than this to arrive is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// What the admin server asks of the proxy shards.
pub trait Shards {
    /// Every shard's metrics, merged.
    fn snapshot(&self) -> impl Future<Output = Snapshot>;
    fn readiness(&self) -> Readiness;
}

/// What `/ready` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Not every shard is accepting yet.
    Starting,
    Ready,
    /// A drain has begun: no new traffic, please.
    Draining,
}

/// Serves admin requests on `listener` (bound to `addr`) forever. Must run
/// on the admin shard's executor.
pub async fn run<S: Shards + 'static>(listener: socket2::Socket, addr: SocketAddr, shards: Rc<S>) {
    let listener = Listener::new(listener);
    tracing::info!(%addr, "admin server listening");
    let mut failures = AcceptFailures::new();
    loop {
        match listener.accept().await.and_then(Socket::new) {
            Ok(stream) => {
                failures.succeeded(addr);
                spawn(serve(stream, shards.clone()));
            }
            Err(err) => sleep(failures.failed(addr, &err)).await,
        }
    }
}

async fn serve(stream: Socket, shards: Rc<impl Shards>) {
    let Some(request) = timeout(REQUEST_TIMEOUT, read_request(&stream)).await else {
        return;
    };
    let response = match request {
        Ok(Some(request)) => respond(&*shards, &request).await,
        Ok(None) => Response::text(400, "bad request\n"),
        Err(_) => return,
    };
    let _ = stream.write_all(&response.into_bytes()).await;
}

/// Reads one request head; `None` for anything that is not a parsable
/// request within the size limit.
async fn read_request(stream: &Socket) -> std::io::Result<Option<Request>> {
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

async fn respond(shards: &impl Shards, request: &Request) -> Response {
    if request.method != "GET" && request.method != "HEAD" {
        return Response::text(405, "only GET and HEAD\n");
    }
    let response = match request.path.as_str() {
        "/live" => Response::text(200, "live\n"),
        "/ready" => match shards.readiness() {
            Readiness::Ready => Response::text(200, "ready\n"),
            Readiness::Starting => Response::text(503, "starting\n"),
            Readiness::Draining => Response::text(503, "draining\n"),
        },
        "/metrics" => {
            let snapshot = shards.snapshot().await;
            let mut body = String::with_capacity(16 * 1024);
            encode(&snapshot, &ProcessStats::read(), &mut body);
            Response::new(200, "text/plain; version=0.0.4", body)
        }
        "/shards" => Response::new(
            200,
            "application/json",
            shards_json(&shards.snapshot().await),
        ),
        _ => Response::text(404, "not found: try /metrics, /ready, /live or /shards\n"),
    };
    if request.method == "HEAD" {
        response.without_body()
    } else {
        response
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
