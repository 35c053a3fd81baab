//! The demo's traffic, all of it through proxy A's outbound port and on
//! over the mesh: HTTP/1 keep-alive connections, one HTTP/2 connection
//! carrying plain requests and gRPC calls, and opaque byte streams. Every
//! byte that comes back is compared with what was sent; the first
//! difference ends the traffic with an error that says where.
//!
//! The clients run together on one thread with a current-thread tokio
//! runtime, so that the balancer sees requests in flight at once and has
//! to choose; every wait has `TRAFFIC_LIMIT` as its bound.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::wire;

/// The `Host` (HTTP/1) and `:authority` (HTTP/2) of every request: what
/// the proxies' `authority` label shows.
pub const AUTHORITY: &str = "api.demo.svc.cluster.local";

/// HTTP/1 keep-alive connections, and the requests each sends in turn.
const HTTP1_CONNECTIONS: usize = 4;
const HTTP1_REQUESTS: usize = 50;
/// Requests and gRPC calls on the one HTTP/2 connection, and how many are
/// in flight at once: within ringside's 100 concurrent streams, which a
/// burst sent before its SETTINGS arrive would pass (those past it are
/// refused).
const HTTP2_REQUESTS: usize = 100;
const GRPC_CALLS: usize = 40;
const HTTP2_IN_FLIGHT: usize = 32;
/// Opaque connections, and the bytes each sends (and gets back).
const OPAQUE_CONNECTIONS: usize = 4;
const OPAQUE_BYTES: usize = 4 << 20;

/// The longest the whole traffic may take before it counts as failed;
/// it takes a second or two.
const TRAFFIC_LIMIT: Duration = Duration::from_secs(60);

/// What was sent and checked.
pub struct Traffic {
    pub http1_requests: usize,
    pub http2_requests: usize,
    pub grpc_calls: usize,
    pub opaque_connections: usize,
    /// What each opaque connection sends, and gets back.
    pub opaque_bytes_each: usize,
    /// Bytes sent and found again in what came back, every protocol.
    pub checked_bytes: usize,
    pub elapsed: Duration,
}

impl Traffic {
    /// Requests the proxies count in `request_total`.
    pub fn http_requests(&self) -> usize {
        self.http1_requests + self.http2_requests + self.grpc_calls
    }
}

/// Runs all of it against `outbound`, proxy A's route.
pub fn run(outbound: SocketAddr) -> anyhow::Result<Traffic> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the traffic's runtime")?;
    let started = Instant::now();
    let checked_bytes = runtime.block_on(async move {
        tokio::time::timeout(TRAFFIC_LIMIT, all(outbound))
            .await
            .with_context(|| format!("the traffic took more than {TRAFFIC_LIMIT:?}"))?
    })?;
    Ok(Traffic {
        http1_requests: HTTP1_CONNECTIONS * HTTP1_REQUESTS,
        http2_requests: HTTP2_REQUESTS,
        grpc_calls: GRPC_CALLS,
        opaque_connections: OPAQUE_CONNECTIONS,
        opaque_bytes_each: OPAQUE_BYTES,
        checked_bytes,
        elapsed: started.elapsed(),
    })
}

/// Every client at once; the bytes they checked.
async fn all(outbound: SocketAddr) -> anyhow::Result<usize> {
    let mut tasks = Vec::new();
    for connection in 0..HTTP1_CONNECTIONS {
        tasks.push(tokio::spawn(http1(outbound, connection)));
    }
    tasks.push(tokio::spawn(http2(outbound)));
    for connection in 0..OPAQUE_CONNECTIONS {
        tasks.push(tokio::spawn(opaque(outbound, connection)));
    }
    let mut checked = 0;
    for task in tasks {
        checked += task.await.context("a client task")??;
    }
    Ok(checked)
}

/// A connection to proxy A, without Nagle's delay (a small request would
/// otherwise wait for the previous one's ACK).
async fn connect(outbound: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(outbound)
        .await
        .context("connecting to proxy A")?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The body of request `n` of client `client`: sizes from 1 byte to 16 KiB,
/// contents that differ from one request to the next.
fn body(client: usize, n: usize) -> Bytes {
    let len = 1 + (n * 997 + client * 131) % (16 << 10);
    pattern(len, (client * 1000 + n) as u8)
}

/// Bytes that change at every position, seeded; `seed` is the first byte.
fn pattern(len: usize, seed: u8) -> Bytes {
    let bytes = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed));
    bytes.collect::<Vec<u8>>().into()
}

/// Where `got` first differs from `sent`, for the error.
fn differs(what: &str, sent: &[u8], got: &[u8]) -> anyhow::Result<()> {
    if sent == got {
        return Ok(());
    }
    let at = sent.iter().zip(got).position(|(a, b)| a != b);
    let at = at.unwrap_or(sent.len().min(got.len()));
    anyhow::bail!(
        "{what}: MISMATCH: sent {} bytes, got {} back, first difference at byte {at}",
        sent.len(),
        got.len()
    )
}

async fn http1(outbound: SocketAddr, client: usize) -> anyhow::Result<usize> {
    let mut stream = connect(outbound).await?;
    let mut buf = BytesMut::new();
    let mut checked = 0;
    for n in 0..HTTP1_REQUESTS {
        let what = format!("HTTP/1 connection {client}, request {n}");
        let sent = body(client, n);
        let head = format!(
            "POST /echo HTTP/1.1\r\nhost: {AUTHORITY}\r\ncontent-length: {}\r\n\r\n",
            sent.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(&sent);
        stream.write_all(&request).await?;
        let head_len = wire::read_head(&mut stream, &mut buf).await?;
        let head_len = head_len.with_context(|| format!("{what}: closed without a response"))?;
        let mut headers = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        response.parse(&buf[..head_len]).context("a response")?;
        let status = response.code.unwrap_or(0);
        anyhow::ensure!(status == 200, "{what}: answered {status}");
        let length = wire::content_length(response.headers)?;
        let got = wire::read_body(&mut stream, &mut buf, head_len, length).await?;
        differs(&what, &sent, &got)?;
        checked += sent.len();
    }
    Ok(checked)
}

/// Plain requests and gRPC calls on one HTTP/2 connection, up to
/// `HTTP2_IN_FLIGHT` at once.
async fn http2(outbound: SocketAddr) -> anyhow::Result<usize> {
    let stream = connect(outbound).await?;
    let (client, connection) = h2::client::handshake(stream).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            eprintln!("demo: the HTTP/2 client connection: {err}");
        }
    });
    let in_flight = Arc::new(Semaphore::new(HTTP2_IN_FLIGHT));
    let mut streams = Vec::new();
    for n in 0..HTTP2_REQUESTS + GRPC_CALLS {
        let (client, in_flight) = (client.clone(), in_flight.clone());
        let grpc = n >= HTTP2_REQUESTS;
        streams.push(tokio::spawn(async move {
            let _permit = in_flight.acquire_owned().await?;
            http2_stream(client, n, grpc).await
        }));
    }
    let mut checked = 0;
    for stream in streams {
        checked += stream.await.context("an HTTP/2 stream")??;
    }
    Ok(checked)
}

async fn http2_stream(
    client: h2::client::SendRequest<Bytes>,
    n: usize,
    grpc: bool,
) -> anyhow::Result<usize> {
    let what = match grpc {
        true => format!("gRPC call {n}"),
        false => format!("HTTP/2 request {n}"),
    };
    let message = body(HTTP1_CONNECTIONS, n);
    let (path, sent) = match grpc {
        // A gRPC message: not compressed, its length, then itself.
        true => {
            let mut framed = vec![0];
            framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
            framed.extend_from_slice(&message);
            ("/demo.Echo/Say", Bytes::from(framed))
        }
        false => ("/echo", message),
    };
    let mut request = http::Request::post(format!("http://{AUTHORITY}{path}"));
    if grpc {
        request = request
            .header("content-type", "application/grpc")
            .header("te", "trailers");
    }
    let mut client = client.ready().await?;
    let (response, mut send) = client.send_request(request.body(())?, false)?;
    send.send_data(sent.clone(), true)?;
    let response = response.await.with_context(|| what.clone())?;
    let status = response.status();
    anyhow::ensure!(status == 200, "{what}: answered {status}");
    let mut body = response.into_body();
    let mut got = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.with_context(|| what.clone())?;
        body.flow_control().release_capacity(chunk.len())?;
        got.extend_from_slice(&chunk);
    }
    differs(&what, &sent, &got)?;
    if grpc {
        let trailers = body.trailers().await?.unwrap_or_default();
        let grpc_status = trailers.get("grpc-status").map(|value| value.as_bytes());
        anyhow::ensure!(
            grpc_status == Some(b"0"),
            "{what}: grpc-status {grpc_status:?}, not 0"
        );
    }
    Ok(sent.len())
}

/// A byte stream that is not HTTP (its first byte is a small binary
/// value): proxy A carries it opaque, over the mesh, to an echo.
async fn opaque(outbound: SocketAddr, client: usize) -> anyhow::Result<usize> {
    let what = format!("opaque stream {client}");
    let sent = pattern(OPAQUE_BYTES, client as u8);
    let stream = connect(outbound).await?;
    let (mut reader, mut writer) = stream.into_split();
    let to_send = sent.clone();
    let sender = tokio::spawn(async move {
        writer.write_all(&to_send).await?;
        writer.shutdown().await
    });
    let mut got = Vec::with_capacity(OPAQUE_BYTES);
    tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut got).await?;
    sender.await??;
    differs(&what, &sent, &got)?;
    Ok(sent.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_is_an_error_that_says_where() {
        let sent = pattern(1000, 7);
        assert!(differs("same", &sent, &sent).is_ok());
        let mut changed = sent.to_vec();
        changed[600] ^= 1;
        let err = differs("stream 1", &sent, &changed)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "stream 1: MISMATCH: sent 1000 bytes, got 1000 back, first difference at byte 600"
        );
        let err = differs("stream 2", &sent, &sent[..10])
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("got 10 back, first difference at byte 10"),
            "{err}"
        );
    }
}
