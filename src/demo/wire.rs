//! HTTP/1 messages as the demo's origins and clients read them: a head up
//! to its blank line, then a body of `content-length` bytes. Only what the
//! demo sends and ringside forwards: no chunked bodies, no trailers, no
//! pipelining past one message.

use anyhow::Context;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// More than any head the demo sends or ringside adds to.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The headers a parsed head is read into.
pub const MAX_HEADERS: usize = 32;

/// Reads from `stream` into `buf` until a whole head is in; returns its
/// length, or `None` when the peer closed before sending a byte of one.
pub async fn read_head(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
) -> anyhow::Result<Option<usize>> {
    loop {
        if let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") {
            return Ok(Some(end + 4));
        }
        anyhow::ensure!(
            buf.len() <= MAX_HEAD_BYTES,
            "an HTTP/1 head longer than {MAX_HEAD_BYTES} bytes"
        );
        if stream.read_buf(buf).await? == 0 {
            anyhow::ensure!(buf.is_empty(), "the peer closed inside an HTTP/1 head");
            return Ok(None);
        }
    }
}

/// The head's `content-length`, 0 when absent; a chunked body is refused.
pub fn content_length(headers: &[httparse::Header<'_>]) -> anyhow::Result<usize> {
    let mut length = 0;
    for header in headers {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            anyhow::bail!("a chunked HTTP/1 body, which the demo never sends");
        }
        if header.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(header.value).context("content-length")?;
            length = text.trim().parse().context("content-length")?;
        }
    }
    Ok(length)
}

/// Drops the head (`head_len` bytes) from `buf`, then reads until the
/// `length` bytes of body that follow are in, and takes them.
pub async fn read_body(
    stream: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    head_len: usize,
    length: usize,
) -> anyhow::Result<Bytes> {
    buf.advance(head_len);
    while buf.len() < length {
        let read = stream.read_buf(buf).await?;
        anyhow::ensure!(read > 0, "the peer closed inside an HTTP/1 body");
    }
    Ok(buf.split_to(length).freeze())
}

/// The value of header `name`, as text, when present and UTF-8.
pub fn header<'a>(headers: &'a [httparse::Header<'_>], name: &str) -> Option<&'a str> {
    let found = headers.iter().find(|h| h.name.eq_ignore_ascii_case(name));
    found.and_then(|h| std::str::from_utf8(h.value).ok())
}
