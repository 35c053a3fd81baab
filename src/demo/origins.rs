//! The demo's two origins, the application behind proxy B: a fast one and
//! one that waits `SLOW_ORIGIN_DELAY` before each HTTP answer, behind the
//! same route, so that proxy A's balancer (P2C over peak EWMA latency) has
//! a choice to make and the latency percentiles have a tail to show.
//!
//! Each port speaks whatever the client speaks, told apart by ringside's
//! own detector: HTTP/1 and HTTP/2 requests get their body echoed (a
//! greeting naming the origin and the caller's mesh identity when there
//! is no body), gRPC calls their message echoed with `grpc-status: 0`,
//! and any other bytes are echoed as they come. They run on one thread
//! with a current-thread tokio runtime: an application, not a shard.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use ringside::config::Direction;
use ringside::detect::{detect, detect_final, Detection};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::wire;

/// What the slow origin adds to every HTTP answer: far above loopback's
/// sub-millisecond answers, so that it shows in p99 and in the balancer's
/// choices, and short enough that the demo's traffic stays within seconds.
pub const SLOW_ORIGIN_DELAY: Duration = Duration::from_millis(50);

/// One origin: where it listens and what it has answered.
pub struct Origin {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub served: Arc<Served>,
}

/// What an origin has answered, counted as it answers.
#[derive(Default)]
pub struct Served {
    /// HTTP/1 and HTTP/2 requests, gRPC calls included.
    pub requests: AtomicU64,
    /// Connections that were neither HTTP/1 nor HTTP/2, echoed.
    pub opaque: AtomicU64,
}

impl Served {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// How one origin answers.
struct Behaviour {
    name: &'static str,
    delay: Duration,
    served: Arc<Served>,
}

/// Starts the fast and the slow origin on loopback ports the kernel
/// picks, on a thread of their own; returns them fast first.
pub fn start() -> anyhow::Result<[Origin; 2]> {
    let kinds = [("fast", Duration::ZERO), ("slow", SLOW_ORIGIN_DELAY)];
    let mut listeners = Vec::new();
    let mut origins = Vec::new();
    for (name, delay) in kinds {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("starting an origin")?;
        listener.set_nonblocking(true)?;
        let served = Arc::new(Served::default());
        let addr = listener.local_addr()?;
        origins.push(Origin {
            name,
            addr,
            served: served.clone(),
        });
        let behaviour = Behaviour {
            name,
            delay,
            served,
        };
        listeners.push((listener, Arc::new(behaviour)));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the origins' runtime")?;
    std::thread::Builder::new()
        .name("demo-origins".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut accepting = Vec::new();
                for (listener, behaviour) in listeners {
                    accepting.push(tokio::spawn(accept(listener, behaviour)));
                }
                for task in accepting {
                    let _ = task.await;
                }
            })
        })
        .context("starting the origins' thread")?;
    let [fast, slow] = <[Origin; 2]>::try_from(origins).ok().expect("two origins");
    Ok([fast, slow])
}

async fn accept(listener: std::net::TcpListener, behaviour: Arc<Behaviour>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(err) => return eprintln!("demo: the {} origin cannot listen: {err}", behaviour.name),
    };
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of fds, say: wait a little rather than spin.
                eprintln!("demo: the {} origin cannot accept: {err}", behaviour.name);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Answers are a head and a body: without it, Nagle's algorithm
        // holds the body until the head's ACK, which the peer delays.
        let _ = stream.set_nodelay(true);
        let behaviour = behaviour.clone();
        tokio::spawn(async move {
            if let Err(err) = serve(stream, &behaviour).await {
                eprintln!("demo: the {} origin: {err:#}", behaviour.name);
            }
        });
    }
}

/// Reads until ringside's detector has a verdict on the first bytes, then
/// answers in that protocol.
async fn serve(mut stream: TcpStream, behaviour: &Arc<Behaviour>) -> anyhow::Result<()> {
    let mut first = BytesMut::with_capacity(4096);
    let verdict = loop {
        let closed = stream.read_buf(&mut first).await? == 0;
        match detect(&first, Direction::Outbound) {
            Detection::NeedMore if closed => break detect_final(&first, Direction::Outbound),
            Detection::NeedMore => continue,
            verdict => break verdict,
        }
    };
    match verdict {
        Detection::Http1 => http1(stream, first, behaviour).await,
        Detection::Http2 => {
            let (reader, writer) = stream.into_split();
            let io = tokio::io::join(std::io::Cursor::new(first.freeze()).chain(reader), writer);
            http2(io, behaviour).await
        }
        _ => echo(stream, first.freeze(), behaviour).await,
    }
}

async fn http1(
    mut stream: TcpStream,
    mut buf: BytesMut,
    behaviour: &Behaviour,
) -> anyhow::Result<()> {
    while let Some(head_len) = wire::read_head(&mut stream, &mut buf).await? {
        let mut headers = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        request
            .parse(&buf[..head_len])
            .context("an HTTP/1 request")?;
        let length = wire::content_length(request.headers)?;
        let client_id = wire::header(request.headers, "l5d-client-id").map(str::to_string);
        let body = wire::read_body(&mut stream, &mut buf, head_len, length).await?;
        let body = behaviour.answer(body, client_id.as_deref()).await;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-origin: {}\r\n\r\n",
            body.len(),
            behaviour.name
        );
        let mut answer = head.into_bytes();
        answer.extend_from_slice(&body);
        stream.write_all(&answer).await?;
    }
    Ok(())
}

async fn http2(
    io: impl AsyncRead + AsyncWrite + Unpin,
    behaviour: &Arc<Behaviour>,
) -> anyhow::Result<()> {
    let mut connection = h2::server::handshake(io).await?;
    while let Some(accepted) = connection.accept().await {
        let (request, respond) = accepted?;
        let behaviour = behaviour.clone();
        tokio::spawn(async move {
            if let Err(err) = http2_stream(request, respond, &behaviour).await {
                eprintln!("demo: the {} origin: {err:#}", behaviour.name);
            }
        });
    }
    Ok(())
}

async fn http2_stream(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    behaviour: &Behaviour,
) -> anyhow::Result<()> {
    let (parts, mut body) = request.into_parts();
    let mut received = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        body.flow_control().release_capacity(chunk.len())?;
        received.extend_from_slice(&chunk);
    }
    let content_type = parts.headers.get(http::header::CONTENT_TYPE);
    let grpc = content_type.is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
    let client_id = parts.headers.get("l5d-client-id");
    let client_id = client_id.and_then(|value| value.to_str().ok());
    let body = behaviour.answer(received.freeze(), client_id).await;
    let mut response = http::Response::builder()
        .status(200)
        .header("x-origin", behaviour.name);
    if grpc {
        response = response.header(http::header::CONTENT_TYPE, "application/grpc");
    }
    let mut send = respond.send_response(response.body(())?, false)?;
    send.send_data(body, !grpc)?;
    if grpc {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        send.send_trailers(trailers)?;
    }
    Ok(())
}

/// Sends back the bytes already read, then everything that follows, and
/// closes its side when the client has closed its own.
async fn echo(stream: TcpStream, first: Bytes, behaviour: &Behaviour) -> anyhow::Result<()> {
    behaviour.served.opaque.fetch_add(1, Ordering::Relaxed);
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(&first).await?;
    tokio::io::copy(&mut reader, &mut writer).await?;
    writer.shutdown().await?;
    Ok(())
}

impl Behaviour {
    /// The body of an HTTP answer, after this origin's delay: the request's
    /// own body, or a greeting when it had none.
    async fn answer(&self, body: Bytes, client_id: Option<&str>) -> Bytes {
        self.served.requests.fetch_add(1, Ordering::Relaxed);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if !body.is_empty() {
            return body;
        }
        let caller = client_id.unwrap_or("nobody: no l5d-client-id came with the request");
        Bytes::from(format!(
            "hello from the {} origin; the mesh says you are {caller}\n",
            self.name
        ))
    }
}
