//! HTTP/2 in the soak: an h2c origin that echoes each request body as its
//! response, and a client that runs streams over a connection, a few at a
//! time, each checked by digest. Both run the `h2` crate on current-thread
//! tokio runtimes, as the load test's other HTTP/2 code does.

use super::ledger::{Fault, Kind, Outcome, Transfer};
use super::payload::{Payload, Rng, StreamHash};
use bytes::Bytes;
use h2::{Reason, SendStream};
use std::future::poll_fn;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The echo origin; dropping it stops accepting.
pub struct EchoOrigin {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EchoOrigin {
    pub fn start() -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let runtime = runtime()?;
        let thread = {
            let stopping = stopping.clone();
            std::thread::Builder::new()
                .name("soak-origin-h2".into())
                .spawn(move || {
                    runtime.block_on(async move {
                        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                            return;
                        };
                        while let Ok((socket, _)) = listener.accept().await {
                            // Drop connects once to wake this loop up.
                            if stopping.load(Ordering::SeqCst) {
                                return;
                            }
                            tokio::spawn(serve(socket));
                        }
                    })
                })?
        };
        Ok(Self {
            addr,
            stopping,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for EchoOrigin {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

async fn serve(socket: tokio::net::TcpStream) {
    let _ = socket.set_nodelay(true);
    let Ok(mut connection) = h2::server::handshake(socket).await else {
        return;
    };
    while let Some(Ok((request, mut respond))) = connection.accept().await {
        tokio::spawn(async move {
            let mut body = request.into_body();
            let mut echoed = Vec::new();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
                echoed.extend_from_slice(&chunk);
            }
            let response = http::Response::builder()
                .status(200)
                .header("content-length", echoed.len())
                .body(())
                .expect("static response head");
            if let Ok(mut send) = respond.send_response(response, echoed.is_empty()) {
                let _ = send_all(&mut send, Bytes::from(echoed), None, None).await;
            }
        });
    }
}

/// Most capacity asked of h2 at a time: one window's worth.
const RESERVE_BYTES: usize = 64 * 1024;

/// Sends `data` as flow control allows, then ends the stream; with
/// `reset_after`, resets it (CANCEL) once that many bytes are out instead.
/// `progress` follows the bytes handed to h2.
async fn send_all(
    send: &mut SendStream<Bytes>,
    mut data: Bytes,
    reset_after: Option<usize>,
    progress: Option<&Progress>,
) -> Result<(), h2::Error> {
    let mut sent = 0;
    while !data.is_empty() {
        if reset_after.is_some_and(|limit| sent >= limit) {
            send.send_reset(Reason::CANCEL);
            return Ok(());
        }
        // Never more than h2's send buffer (400 KiB by default): a
        // reservation past it is never granted and the stream hangs
        // (hyperium/h2 PR #582's thread; seen here as responses stuck at
        // 409,598 bytes).
        send.reserve_capacity(data.len().min(RESERVE_BYTES));
        let granted = match poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(granted) => granted?,
            None => return Err(h2::Error::from(Reason::STREAM_CLOSED)),
        };
        if granted == 0 {
            // h2 may wake with nothing granted; ask again.
            continue;
        }
        let piece = data.split_to(granted.min(data.len()));
        sent += piece.len();
        if let Some(progress) = progress {
            progress.sent.store(sent as u64, Ordering::Relaxed);
            progress.moved();
        }
        send.send_data(piece, data.is_empty())?;
    }
    Ok(())
}

/// How the HTTP/2 client behaves.
#[derive(Clone, Copy, Debug)]
pub struct ClientPlan {
    pub target: SocketAddr,
    pub seed: u64,
    /// Streams open at once on a connection.
    pub concurrent: usize,
    /// Streams per connection before it is closed and another opened.
    pub streams_per_connection: usize,
    pub max_size: usize,
    /// Chance (percent) that a stream is reset part way by the client.
    pub reset_percent: u64,
    pub io_timeout: Duration,
}

/// Runs connections of streams, one at least and more until `deadline`;
/// each stream is a transfer timed from `clock`.
pub fn run_client(plan: ClientPlan, clock: Instant, deadline: Instant) -> Vec<Transfer> {
    let Ok(runtime) = runtime() else {
        return Vec::new();
    };
    runtime.block_on(async move {
        let mut rng = Rng::new(plan.seed);
        let mut transfers = Vec::new();
        // At least one connection (the warm-up's), then more until the deadline.
        let mut first = true;
        while std::mem::take(&mut first) || Instant::now() < deadline {
            let started = clock.elapsed();
            let client = match connect(plan.target).await {
                Ok(client) => client,
                Err(error) => {
                    transfers.push(Transfer {
                        kind: Kind::H2Stream,
                        exposed_to: None,
                        started,
                        ended: clock.elapsed(),
                        outcome: Outcome::Failed(format!("h2 connect: {error}")),
                    });
                    continue;
                }
            };
            for _ in 0..plan.streams_per_connection.div_ceil(plan.concurrent) {
                let batch: Vec<_> = (0..plan.concurrent)
                    .map(|_| {
                        let size = rng.size(plan.max_size);
                        let reset_after = rng
                            .percent(plan.reset_percent)
                            .then(|| rng.below(size as u64 + 1) as usize);
                        let seed = rng.next_u64();
                        tokio::spawn(stream(client.clone(), plan, seed, size, reset_after, clock))
                    })
                    .collect();
                for handle in batch {
                    if let Ok(transfer) = handle.await {
                        transfers.push(transfer);
                    }
                }
            }
        }
        transfers
    })
}

async fn connect(target: SocketAddr) -> anyhow::Result<h2::client::SendRequest<Bytes>> {
    let socket = tokio::net::TcpStream::connect(target).await?;
    socket.set_nodelay(true)?;
    let (client, connection) = h2::client::handshake(socket).await?;
    // The connection ends when every sender is dropped.
    tokio::spawn(connection);
    Ok(client)
}

async fn stream(
    client: h2::client::SendRequest<Bytes>,
    plan: ClientPlan,
    seed: u64,
    size: usize,
    reset_after: Option<usize>,
    clock: Instant,
) -> Transfer {
    let started = clock.elapsed();
    let progress = Progress {
        started: Some(Instant::now()),
        ..Progress::default()
    };
    // Like the byte-stream clients' socket timeouts, `io_timeout` bounds a
    // wait with nothing moving, not the whole stream: on a loaded machine a
    // debug ringside can take longer than that for a 1 MiB stream and still
    // be making progress.
    let mut exchange = std::pin::pin!(exchange(
        client,
        plan.target,
        seed,
        size,
        reset_after,
        &progress
    ));
    let outcome = loop {
        match tokio::time::timeout(plan.io_timeout, &mut exchange).await {
            Ok(outcome) => break outcome,
            Err(_) if progress.idle() < plan.io_timeout => continue,
            Err(_) => {
                break Outcome::Failed(format!(
                    "stuck for {:?} {}",
                    plan.io_timeout,
                    progress.describe(size)
                ))
            }
        }
    };
    Transfer {
        kind: Kind::H2Stream,
        exposed_to: reset_after.map(|_| Fault::ClientReset),
        started,
        ended: clock.elapsed(),
        outcome,
    }
}

/// How far a stream got, for the report of one that got stuck.
#[derive(Default)]
struct Progress {
    /// 0: waiting to open the stream, 1: sending the body, 2: waiting for
    /// the response head, 3: reading the response body.
    stage: AtomicU8,
    sent: AtomicU64,
    received: AtomicU64,
    /// When a byte last moved, in ms since `Progress::started`: tells a
    /// stream that stopped from one that was slow.
    moved_ms: AtomicU64,
    started: Option<Instant>,
}

impl Progress {
    /// How long nothing has moved.
    fn idle(&self) -> Duration {
        let since = self
            .started
            .map_or(0, |started| started.elapsed().as_millis() as u64);
        Duration::from_millis(since.saturating_sub(self.moved_ms.load(Ordering::Relaxed)))
    }

    fn describe(&self, size: usize) -> String {
        let stage = match self.stage.load(Ordering::Relaxed) {
            0 => "opening the stream",
            1 => "sending the request body",
            2 => "waiting for the response head",
            _ => "reading the response body",
        };
        format!(
            "{stage} (sent {} and received {} of {size} bytes)",
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }

    fn at(&self, stage: u8) {
        self.stage.store(stage, Ordering::Relaxed);
        self.moved();
    }

    fn moved(&self) {
        let since = self
            .started
            .map_or(0, |started| started.elapsed().as_millis() as u64);
        self.moved_ms.store(since, Ordering::Relaxed);
    }
}

async fn exchange(
    client: h2::client::SendRequest<Bytes>,
    target: SocketAddr,
    seed: u64,
    size: usize,
    reset_after: Option<usize>,
    progress: &Progress,
) -> Outcome {
    let failed =
        |what: &str, error: &dyn std::fmt::Display| Outcome::Failed(format!("{what}: {error}"));
    // Rounded up for the payload's whole words, then cut to size.
    let mut body = vec![0u8; size.next_multiple_of(8)];
    Payload::new(seed, size).next(&mut body);
    body.truncate(size);
    let mut sent = StreamHash::default();
    sent.update(&body);
    let mut ready = match client.ready().await {
        Ok(ready) => ready,
        Err(error) => return failed("h2 ready", &error),
    };
    let request = http::Request::post(format!("http://{target}/echo"))
        .body(())
        .expect("static request head");
    let (response, mut send) = match ready.send_request(request, size == 0) {
        Ok(pair) => pair,
        Err(error) => return failed("h2 request", &error),
    };
    progress.at(1);
    if size > 0 {
        let body = Bytes::from(body);
        if let Err(error) = send_all(&mut send, body, reset_after, Some(progress)).await {
            return failed("h2 request body", &error);
        }
    }
    if reset_after.is_some() {
        return Outcome::Failed("reset by the client".into());
    }
    progress.at(2);
    let response = match response.await {
        Ok(response) => response,
        Err(error) => return failed("h2 response", &error),
    };
    progress.at(3);
    if response.status() != 200 {
        let reason = response
            .headers()
            .get("ringside-proxy-error")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("no reason");
        return Outcome::Status(response.status().as_u16(), reason.to_owned());
    }
    let mut received = StreamHash::default();
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(chunk) => {
                let _ = body.flow_control().release_capacity(chunk.len());
                received.update(&chunk);
                progress.received.store(received.len(), Ordering::Relaxed);
                progress.moved();
            }
            Err(error) => return failed("h2 response body", &error),
        }
    }
    Outcome::compare("h2 echo", received.finish(), sent.finish())
}
