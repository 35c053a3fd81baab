//! The admin server: its own thread and executor, off the proxy cores'
//! queues. It serves `/metrics`, `/ready`, `/live` and `/shards` from
//! snapshots it asks the shards for (through [`Shards`], which the runtime
//! implements) and merges; it knows nothing else of the proxy.

mod policy;
mod slots;
mod wire;

pub use policy::AdminPolicy;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::future;

use crate::io::{sleep, spawn, timeout, AcceptFailures, Listener, Socket};
use crate::metrics::{encode, ProcessStats, Snapshot};
use slots::{Slot, Slots};
use wire::{Request, Response};

/// A request that takes longer than this to arrive is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A response that takes longer than this to write is cut off with a
/// reset, which frees the unsent part in the kernel too: a client that
/// asks for `/metrics` and never reads held the whole page for as long as
/// it liked (20 such clients: +200 MiB, issue 19). With `REQUEST_TIMEOUT`,
/// an exchange has 10 s at most, Prometheus' default `scrape_timeout`,
/// past which a scraper has given up anyway.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Admin connections open at once; past it the oldest is closed (see
/// `slots`). Each may hold a `/metrics` page, so this bounds the admin
/// server's memory to 16 pages; probes and a scraper or two need 4.
const MAX_CONNECTIONS: usize = 16;
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Why an admin connection was cut off (reset), as the `reason` label of
/// `ringside_admin_connections_closed_total` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CutOff {
    RequestTimeout,
    WriteTimeout,
    /// A newer connection took its slot.
    Evicted,
}

impl CutOff {
    fn as_str(self) -> &'static str {
        match self {
            CutOff::RequestTimeout => "request_timeout",
            CutOff::WriteTimeout => "write_timeout",
            CutOff::Evicted => "evicted",
        }
    }
}

/// Admin connections cut off, by why.
type Closes = RefCell<BTreeMap<&'static str, u64>>;

/// What the admin server asks of the proxy shards.
pub trait Shards {
    /// Every shard's metrics, merged.
    fn snapshot(&self) -> impl Future<Output = Snapshot>;
    fn readiness(&self) -> Readiness;
    /// Upstream names with no address now. They leave `/ready` at 200 and
    /// are listed in its body: a readiness probe that failed on them would
    /// take the whole pod, inbound traffic included, out of its Service for
    /// as long as one dependency's name is missing (forever, for a typo),
    /// while only the routes to that name are hurt, and those already
    /// answer 503.
    fn unresolved_names(&self) -> Vec<String>;
    /// Starts the drain, as SIGTERM does (`POST /shutdown`).
    fn shutdown(&self) -> impl Future<Output = ()>;
    /// Reads the config again and applies it, as SIGHUP does
    /// (`POST /reload`).
    fn reload(self: Rc<Self>) -> impl Future<Output = Reloaded>;
}

/// How a reload went: the one line it logged, of what it applied or of
/// why it changed nothing (naming the key at fault).
pub type Reloaded = Result<String, String>;

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

/// Who may stop ringside with `POST /shutdown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownEndpoint {
    /// A client on loopback (a Job's last step in the pod).
    Loopback,
    /// Nobody: 404 `shutdown endpoint is not enabled`, loopback included,
    /// as linkerd2-proxy answers with `LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED`
    /// false (`linkerd/app/admin/src/server.rs`), which the injector sets.
    Disabled,
}

/// Serves admin requests on `listener` (bound to `addr`) forever. Must run
/// on the admin shard's executor.
/// `policy`: the admin port's, under Linkerd's policy controller.
pub async fn run<S: Shards + 'static>(
    listener: socket2::Socket,
    addr: SocketAddr,
    shards: Rc<S>,
    shutdown_endpoint: ShutdownEndpoint,
    policy: Option<AdminPolicy>,
) {
    let policy = policy.map(Rc::new);
    let listener = Listener::new(listener);
    tracing::info!(%addr, "admin server listening");
    let mut failures = AcceptFailures::new();
    let slots = Slots::new(MAX_CONNECTIONS);
    let closes = Rc::new(Closes::default());
    loop {
        let accepted = listener.accept().await.map(|stream| {
            let peer = stream.peer_addr().ok();
            (stream, peer)
        });
        match accepted {
            Ok((stream, peer)) => {
                failures.succeeded(addr);
                let (slot, evicted) = slots.take();
                if evicted {
                    count(&closes, CutOff::Evicted);
                }
                let exchange = Exchange {
                    stream,
                    peer,
                    shards: shards.clone(),
                    closes: closes.clone(),
                    shutdown_endpoint,
                    policy: policy.clone(),
                };
                spawn(exchange.serve(slot));
            }
            Err(err) => sleep(failures.failed(addr, &err)).await,
        }
    }
}

fn count(closes: &Closes, cut_off: CutOff) {
    *closes.borrow_mut().entry(cut_off.as_str()).or_insert(0) += 1;
}

/// One admin connection: a request and its answer.
struct Exchange<S> {
    stream: Socket,
    peer: Option<SocketAddr>,
    shards: Rc<S>,
    closes: Rc<Closes>,
    shutdown_endpoint: ShutdownEndpoint,
    policy: Option<Rc<AdminPolicy>>,
}

impl<S: Shards + 'static> Exchange<S> {
    /// Serves the request until done, cut off or evicted; a connection cut
    /// off is reset, so that the kernel drops what it still holds of it.
    async fn serve(self, slot: Slot) {
        let evicted = async {
            slot.evicted().await;
            Some(CutOff::Evicted)
        };
        let cut_off = future::or(self.answer(), evicted).await;
        if let Some(cut_off) = cut_off {
            self.stream.reset_on_close();
            // An eviction was counted when the newer connection came.
            if cut_off != CutOff::Evicted {
                count(&self.closes, cut_off);
            }
        }
    }

    /// `Some(why)` when the exchange was cut off by a deadline.
    async fn answer(&self) -> Option<CutOff> {
        let Some(request) = timeout(REQUEST_TIMEOUT, read_request(&self.stream)).await else {
            return Some(CutOff::RequestTimeout);
        };
        if let (Ok(Some(request)), Some(policy)) = (&request, &self.policy) {
            if let Some(refusal) = policy.refusal(request, self.peer).await {
                return self.write(refusal).await;
            }
        }
        let response = match request {
            Ok(Some(request)) if request.path == "/shutdown" => {
                let (response, accepted) = shutdown(&request, self.peer, self.shutdown_endpoint);
                // The answer goes out before the drain, which may end the
                // process once no connection is left.
                let cut_off = self.write(response).await;
                if accepted {
                    let peer = self.peer;
                    tracing::info!(?peer, "shutdown requested on the admin server: draining");
                    // A task of its own: an eviction of this connection
                    // must not cancel the drain.
                    let shards = self.shards.clone();
                    spawn(async move { shards.shutdown().await });
                }
                return cut_off;
            }
            Ok(Some(request)) if request.path == "/reload" => {
                match loopback_post(&request, self.peer, "reload") {
                    Some(refusal) => refusal,
                    None => match self.shards.clone().reload().await {
                        Ok(line) => Response::text(200, &format!("{line}\n")),
                        Err(line) => Response::text(400, &format!("{line}\n")),
                    },
                }
            }
            Ok(Some(request)) => respond(&*self.shards, &request, &self.closes).await,
            Ok(None) => Response::text(400, "bad request\n"),
            Err(_) => return None,
        };
        self.write(response).await
    }

    /// Writes `response` and waits for the client to acknowledge all of
    /// it, within `WRITE_TIMEOUT`. A write alone would finish as soon as
    /// the kernel took the bytes: a socket's send buffer grows to 4 MiB,
    /// more than a whole page, which a client that never reads would then
    /// pin in the kernel for minutes after the close.
    async fn write(&self, response: Response) -> Option<CutOff> {
        let bytes = response.into_bytes();
        let delivered = async {
            self.stream.write_all(&bytes).await?;
            drop(bytes);
            let mut pause = Duration::from_millis(1);
            while unacknowledged_bytes(&self.stream)? > 0 {
                sleep(pause).await;
                pause = (pause * 2).min(MAX_DELIVERY_PAUSE);
            }
            std::io::Result::Ok(())
        };
        match timeout(WRITE_TIMEOUT, delivered).await {
            Some(_) => None,
            None => Some(CutOff::WriteTimeout),
        }
    }
}

/// The longest pause between two looks at whether a written response has
/// been acknowledged; the first is 1 ms, by when a client on loopback or in
/// the pod's network has usually acknowledged it.
const MAX_DELIVERY_PAUSE: Duration = Duration::from_millis(16);

/// Bytes written to `stream` that its peer has not acknowledged yet.
fn unacknowledged_bytes(stream: &Socket) -> std::io::Result<usize> {
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int through the pointer,
    // which `queued` is; the fd is open while `stream` lives.
    let done = unsafe { libc::ioctl(stream.fd(), libc::TIOCOUTQ, &mut queued) };
    if done < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(usize::try_from(queued).unwrap_or(0))
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
/// stop the proxy; unless disabled, checked after those (as Linkerd
/// does). True when the drain should start.
fn shutdown(
    request: &Request,
    peer: Option<SocketAddr>,
    endpoint: ShutdownEndpoint,
) -> (Response, bool) {
    match (loopback_post(request, peer, "shutdown"), endpoint) {
        (Some(refusal), _) => (refusal, false),
        (None, ShutdownEndpoint::Disabled) => (
            Response::text(404, "shutdown endpoint is not enabled\n"),
            false,
        ),
        (None, ShutdownEndpoint::Loopback) => (Response::text(200, "shutting down\n"), true),
    }
}

/// The refusal of a request for `what` (`/shutdown`, `/reload`) that is
/// not a POST from loopback; `None` when it may go ahead.
fn loopback_post(request: &Request, peer: Option<SocketAddr>, what: &str) -> Option<Response> {
    if request.method != "POST" {
        return Some(Response::text(405, "only POST\n"));
    }
    // Canonical: an IPv4 client of a dual-stack `[::]` listener arrives
    // as ::ffff:127.0.0.1.
    if !peer.is_some_and(|peer| peer.ip().to_canonical().is_loopback()) {
        let refusal = format!("{what} only from loopback\n");
        return Some(Response::text(403, &refusal));
    }
    None
}

/// `ready`, then one `unresolved NAME` line per upstream name without an
/// address.
fn ready_body(unresolved: &[String]) -> String {
    let lines = unresolved.iter().map(|name| format!("unresolved {name}\n"));
    std::iter::once("ready\n".to_string())
        .chain(lines)
        .collect()
}

async fn respond(shards: &impl Shards, request: &Request, closes: &Closes) -> Response {
    if request.method != "GET" && request.method != "HEAD" {
        return Response::text(405, "only GET and HEAD\n");
    }
    let response = match request.path.as_str() {
        "/live" => Response::text(200, "live\n"),
        "/ready" => match shards.readiness() {
            Readiness::Ready => Response::text(200, &ready_body(&shards.unresolved_names())),
            Readiness::Starting => Response::text(503, "starting\n"),
            Readiness::WaitingForIdentity => Response::text(503, "waiting for identity\n"),
            Readiness::Draining => Response::text(503, "draining\n"),
        },
        "/metrics" => {
            let mut snapshot = shards.snapshot().await;
            snapshot.admin_closed = closes.borrow().clone();
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
            "not found: try /metrics, /ready, /live, /shards, POST /reload or POST /shutdown\n",
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

    /// `shutdown` with the endpoint on, from loopback.
    fn enabled(request: &Request, peer: Option<SocketAddr>) -> (Response, bool) {
        shutdown(request, peer, ShutdownEndpoint::Loopback)
    }

    #[test]
    fn shutdown_takes_a_post_from_loopback_only() {
        let loopback = "127.0.0.1:5000".parse().ok();
        let pod = "198.18.0.7:5000".parse().ok();
        assert_eq!(status(enabled(&request("POST"), loopback)), (200, true));
        assert_eq!(
            status(enabled(&request("POST"), "[::1]:1".parse().ok())),
            (200, true)
        );
        let mapped = "[::ffff:127.0.0.1]:1".parse().ok();
        assert_eq!(status(enabled(&request("POST"), mapped)), (200, true));
        assert_eq!(status(enabled(&request("POST"), pod)), (403, false));
        let mapped_pod = "[::ffff:198.18.0.7]:1".parse().ok();
        assert_eq!(status(enabled(&request("POST"), mapped_pod)), (403, false));
        assert_eq!(status(enabled(&request("POST"), None)), (403, false));
        assert_eq!(status(enabled(&request("GET"), loopback)), (405, false));
    }

    #[test]
    fn a_disabled_shutdown_endpoint_answers_404_even_to_loopback() {
        let disabled = |method, peer: &str| {
            let (response, accepted) = shutdown(
                &request(method),
                peer.parse().ok(),
                ShutdownEndpoint::Disabled,
            );
            ((response.status, accepted), response.into_bytes())
        };
        let ((code, accepted), bytes) = disabled("POST", "127.0.0.1:5000");
        assert_eq!((code, accepted), (404, false));
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.ends_with("shutdown endpoint is not enabled\n"),
            "{text}"
        );
        // Linkerd's order: method, then loopback, then whether it is on.
        assert_eq!(disabled("POST", "198.18.0.7:5000").0, (403, false));
        assert_eq!(disabled("GET", "127.0.0.1:5000").0, (405, false));
    }
}
