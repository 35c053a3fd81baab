//! HTTP/1 between mesh peers, carried as streams on one HTTP/2 connection
//! per peer: Linkerd's "orig-proto" upgrade, on its wire format.
//!
//! Outbound, an HTTP/1 request for a mesh peer goes as a stream on the
//! HTTP/2 mTLS connection kept for that peer (the one HTTP/2 clients use
//! too), marked `l5d-orig-proto: HTTP/1.1` (or `HTTP/1.0`, with
//! `; absolute-form` when its target was an absolute URI); the response
//! comes back to the client as HTTP/1, its body in chunks when it has no
//! length. Inbound, a stream so marked from a client that proved its
//! identity goes to the application as the HTTP/1 request it was, over the
//! route's pooled connections, and its response is marked the same way. So
//! requests from every client connection share one handshake per peer.
//!
//! What cannot ride a stream is not upgraded: an `Upgrade` or `CONNECT`
//! request goes on a connection of its own (session protocol HTTP/1, then
//! a tunnel). The client's `Expect: 100-continue` is answered here, as the
//! body is streamed at once. Trailers of a chunked request body are
//! dropped; an HTTP/2 response's trailers end a chunked response.

mod downgrade;
mod upgrade;

use std::future::poll_fn;
use std::io::{self, Write as _};

use bytes::Bytes;
use futures_lite::future;
use h2::{RecvStream, SendStream};

use super::h2_body::send_data;
use super::io::{BodyError, BodyReader, HttpIo};
use super::ClientId;

/// Marks a message as HTTP/1 carried over HTTP/2, with its version.
pub const ORIG_PROTO: &str = "l5d-orig-proto";

/// Most bytes of an HTTP/2 body gathered before they are written to an
/// HTTP/1 peer: frames that are already in go out in one write.
const MAX_GATHERED_BYTES: usize = 64 * 1024;

/// Why a body could not be carried from one protocol to the other.
enum PumpError {
    /// Reading the HTTP/1 side.
    Read(BodyError),
    /// Writing the HTTP/1 side.
    Write(io::Error),
    /// The HTTP/2 side failed (a reset, or its connection).
    Stream(h2::Error),
}

/// Sends an HTTP/1 body's content as HTTP/2 data, each piece as it is
/// read, the last one ending the stream. A receiver that is gone ends it
/// quietly.
async fn to_stream(
    from: &mut HttpIo,
    body: &mut BodyReader,
    to: &mut SendStream<Bytes>,
) -> Result<(), PumpError> {
    while !body.is_done() {
        let data = from.read_data(body).await.map_err(PumpError::Read)?;
        let sent = match data {
            Some(data) => send_data(to, data, body.is_done()).await,
            None => to.send_data(Bytes::new(), true).map(|()| true),
        };
        if !sent.map_err(PumpError::Stream)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Writes an HTTP/2 body to an HTTP/1 peer after `out` (its head), in
/// chunks or as it is. Frames already received go out in one write with
/// what is gathered (the head and a small body: one write), and their
/// flow-control capacity is released once written. A chunked body ends
/// with the stream's trailers (without the fields `client_id` drops);
/// otherwise they are dropped.
async fn to_http1(
    mut from: RecvStream,
    to: &HttpIo,
    chunked: bool,
    client_id: &ClientId,
    mut out: Vec<u8>,
) -> Result<(), PumpError> {
    let mut unreleased = 0;
    loop {
        let next = poll_fn(|cx| from.poll_data(cx));
        let next = if out.is_empty() {
            next.await
        } else {
            match future::poll_once(next).await {
                Some(next) => next,
                None => {
                    flush(to, &mut out, &mut from, &mut unreleased).await?;
                    continue;
                }
            }
        };
        let Some(data) = next else {
            break;
        };
        let data = match data {
            Ok(data) => data,
            Err(err) => {
                // What came before the failure still goes out; the caller
                // then ends the connection so that it cannot look whole.
                let _ = flush(to, &mut out, &mut from, &mut unreleased).await;
                return Err(PumpError::Stream(err));
            }
        };
        unreleased += data.len();
        if !chunked {
            out.extend_from_slice(&data);
        } else if !data.is_empty() {
            let _ = write!(out, "{:x}\r\n", data.len());
            out.extend_from_slice(&data);
            out.extend_from_slice(b"\r\n");
        }
        if out.len() >= MAX_GATHERED_BYTES {
            flush(to, &mut out, &mut from, &mut unreleased).await?;
        }
    }
    if chunked {
        let mut trailers = poll_fn(|cx| from.poll_trailers(cx)).await;
        if let Ok(Some(trailers)) = &mut trailers {
            client_id.strip_fields(trailers);
        }
        out.extend_from_slice(b"0\r\n");
        for (name, value) in trailers.map_err(PumpError::Stream)?.iter().flatten() {
            header_line(&mut out, name.as_str().as_bytes(), value.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    flush(to, &mut out, &mut from, &mut unreleased).await
}

/// Writes what `to_http1` gathered, then gives its capacity back.
async fn flush(
    to: &HttpIo,
    out: &mut Vec<u8>,
    from: &mut RecvStream,
    unreleased: &mut usize,
) -> Result<(), PumpError> {
    if !out.is_empty() {
        to.write_all(out).await.map_err(PumpError::Write)?;
        out.clear();
    }
    let _ = from
        .flow_control()
        .release_capacity(std::mem::take(unreleased));
    Ok(())
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
