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
    /// Starts the drain, as SIGTERM does (`POST /shutdown`).
    fn shutdown(&self) -> impl Future<Output = ()>;
}

/// What `/ready` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Not every shard is accepting yet.
    Starting,
    /// The configured identity's certificate is not issued yet: no mesh
    /// peer can be reached or served.
    WaitingForIdentity,
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
        let accepted = listener.accept().await.map(|stream| {
            let peer = stream.peer_addr().ok();
            (stream, peer)
        });
        match accepted {
            Ok((stream, peer)) => {
                failures.succeeded(addr);
                spawn(serve(stream, peer, shards.clone()));
            }
            Err(err) => sleep(failures.failed(addr, &err)).await,
        }
    }
}

async fn serve(stream: Socket, peer: Option<SocketAddr>, shards: Rc<impl Shards>) {
    let Some(request) = timeout(REQUEST_TIMEOUT, read_request(&stream)).await else {
        return;
    };
    let response = match request {
        Ok(Some(request)) if request.path == "/shutdown" => {
            let (response, accepted) = shutdown(&request, peer);
            // The answer goes out before the drain, which may end the
            // process once no connection is left.
            let _ = stream.write_all(&response.into_bytes()).await;
            if accepted {
                tracing::info!(?peer, "shutdown requested on the admin server: draining");
                shards.shutdown().await;
            }
            return;
        }
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

/// `POST /shutdown`, as Linkerd's proxy has it, so that a Job's last step
/// can stop its sidecar: from loopback only, since the admin address may be
/// the pod's own for probes, and a probe from elsewhere must not be able to
/// stop the proxy. True when the drain should start.
fn shutdown(request: &Request, peer: Option<SocketAddr>) -> (Response, bool) {
    if request.method != "POST" {
        return (Response::text(405, "only POST\n"), false);
    }
    // Canonical: an IPv4 client of a dual-stack `[::]` listener arrives
    // as ::ffff:127.0.0.1.
    if !peer.is_some_and(|peer| peer.ip().to_canonical().is_loopback()) {
        return (Response::text(403, "shutdown only from loopback\n"), false);
    }
    (Response::text(200, "shutting down\n"), true)
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
            Readiness::WaitingForIdentity => Response::text(503, "waiting for identity\n"),
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
        _ => Response::text(
            404,
            "not found: try /metrics, /ready, /live, /shards or POST /shutdown\n",
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str) -> Request {
        Request {
            method: method.to_string(),
            path: "/shutdown".to_string(),
        }
    }

    fn status(answer: (Response, bool)) -> (u16, bool) {
        (answer.0.status, answer.1)
    }

    #[test]
    fn shutdown_takes_a_post_from_loopback_only() {
        let loopback = "127.0.0.1:5000".parse().ok();
        let pod = "198.18.0.7:5000".parse().ok();
        assert_eq!(status(shutdown(&request("POST"), loopback)), (200, true));
        assert_eq!(
            status(shutdown(&request("POST"), "[::1]:1".parse().ok())),
            (200, true)
        );
        let mapped = "[::ffff:127.0.0.1]:1".parse().ok();
        assert_eq!(status(shutdown(&request("POST"), mapped)), (200, true));
        assert_eq!(status(shutdown(&request("POST"), pod)), (403, false));
        let mapped_pod = "[::ffff:198.18.0.7]:1".parse().ok();
        assert_eq!(status(shutdown(&request("POST"), mapped_pod)), (403, false));
        assert_eq!(status(shutdown(&request("POST"), None)), (403, false));
        assert_eq!(status(shutdown(&request("GET"), loopback)), (405, false));
    }
}
