//! HTTP/1 message heads: parsed with httparse into an owned form, checked
//! against the proxy's limits, and written back out without the hop-by-hop
//! headers (RFC 9110 §7.6.1) that belong to one connection only.
//!
//! Bodies are passed through with their framing unchanged (a chunked body
//! stays chunked), so `Transfer-Encoding` and `Content-Length` are kept;
//! `Framing` says where a body ends.

use std::borrow::Cow;
use std::mem::MaybeUninit;
use std::ops::Range;

use super::client_id::{ClientId, CLIENT_ID_HEADER};

/// Most header lines a request or response head may carry.
pub const MAX_HEADERS: usize = 100;
/// Most bytes a head may take, request line and headers included.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most bytes a request line may take, its CRLF not counted. RFC 9112 §3
/// asks for at least 8,000 octets; Apache's `LimitRequestLine` is 8,190
/// and nginx's buffer for a line 8 KiB. A longer one is answered 414, as
/// soon as its first 8 KiB are in without a line end.
pub const MAX_REQUEST_LINE_BYTES: usize = 8 * 1024;

/// Why a head cannot be proxied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed head: {0}")]
    Malformed(String),
    #[error("head larger than {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} headers")]
    TooLarge,
    #[error("request line longer than {MAX_REQUEST_LINE_BYTES} bytes")]
    RequestLineTooLong,
    #[error("conflicting or invalid body framing: {0}")]
    Framing(&'static str),
}

/// Where a message body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

/// Where one header line's name and value lie in its head's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeaderSpan {
    name: Range<u32>,
    value: Range<u32>,
}

/// A head's bytes as received, with the spans of its header lines. Parsing
/// copies the head once and keeps offsets into the copy: two allocations
/// per head, however many headers it has.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    raw: Vec<u8>,
    headers: Vec<HeaderSpan>,
    /// The head can be forwarded byte for byte: HTTP/1.1, CRLF line ends
    /// only, no hop-by-hop header to drop and no repeated Content-Length.
    verbatim: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    fields: Fields,
    method: Range<u32>,
    target: Range<u32>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    fields: Fields,
    reason: Range<u32>,
    pub status: u16,
    pub minor_version: u8,
}

/// What a head parser returns: `Ok(None)` while the head is incomplete,
/// otherwise the head and its length in bytes.
pub type Parsed<T> = Result<Option<(T, usize)>, HeadError>;

pub fn parse_request(bytes: &[u8]) -> Parsed<RequestHead> {
    if request_line_too_long(bytes) {
        return Err(HeadError::RequestLineTooLong);
    }
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut request,
        bytes,
        &mut slots,
    );
    let parsed = complete(parsed, bytes, |head| {
        let minor_version = request.version.unwrap_or(1);
        RequestHead {
            method: span(head, request.method.unwrap_or_default().as_bytes()),
            target: span(head, request.path.unwrap_or_default().as_bytes()),
            fields: Fields::new(head, request.headers, minor_version),
            minor_version,
        }
    })?;
    // httparse takes any visible character in a target. A fragment is
    // never sent (RFC 9112 §3.2), and HAProxy refuses one since
    // CVE-2023-45539, where a path rule and the server read such a path
    // differently.
    if parsed
        .as_ref()
        .is_some_and(|(head, _)| head.target().contains('#'))
    {
        return Err(HeadError::Malformed(
            "fragment in the request target".into(),
        ));
    }
    // Two Host lines let the proxy and the server route by different hosts;
    // RFC 9112 §3.2 says such a request MUST be answered 400.
    if parsed.as_ref().is_some_and(|(head, _)| {
        head.headers()
            .filter(|(name, _)| name.eq_ignore_ascii_case(b"host"))
            .nth(1)
            .is_some()
    }) {
        return Err(HeadError::Malformed("more than one host header".into()));
    }
    Ok(parsed)
}

/// The request line in `bytes` (complete or not) is past
/// `MAX_REQUEST_LINE_BYTES`: no line end within them.
fn request_line_too_long(bytes: &[u8]) -> bool {
    let line = &bytes[..bytes.len().min(MAX_REQUEST_LINE_BYTES + 2)];
    match memchr::memchr(b'\n', line) {
        Some(end) => {
            line[..end]
                .strip_suffix(b"\r")
                .unwrap_or(&line[..end])
                .len()
                > MAX_REQUEST_LINE_BYTES
        }
        None => line.len() > MAX_REQUEST_LINE_BYTES + 1,
    }
}

pub fn parse_response(bytes: &[u8]) -> Parsed<ResponseHead> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        bytes,
        &mut slots,
    );
    complete(parsed, bytes, |head| {
        let minor_version = response.version.unwrap_or(1);
        ResponseHead {
            reason: span(head, response.reason.unwrap_or_default().as_bytes()),
            fields: Fields::new(head, response.headers, minor_version),
            status: response.code.unwrap_or_default(),
            minor_version,
        }
    })
}

/// What httparse said, in the proxy's terms: a complete head is built from
/// its bytes; a partial one is an error only past the size limit.
fn complete<T>(
    parsed: httparse::Result<usize>,
    bytes: &[u8],
    build: impl FnOnce(&[u8]) -> T,
) -> Parsed<T> {
    match parsed {
        Ok(httparse::Status::Complete(len)) => Ok(Some((build(&bytes[..len]), len))),
        Ok(httparse::Status::Partial) if bytes.len() >= MAX_HEAD_BYTES => Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge),
        Err(err) => Err(HeadError::Malformed(err.to_string())),
    }
}

/// The span of `part`, a slice httparse returned, within `head`. An empty
/// part (a missing reason phrase) may point anywhere: it gets an empty span.
fn span(head: &[u8], part: &[u8]) -> Range<u32> {
    let start = (part.as_ptr() as usize).wrapping_sub(head.as_ptr() as usize);
    if part.is_empty() || start > head.len() {
        return 0..0;
    }
    // Heads are at most MAX_HEAD_BYTES long, so offsets fit in u32.
    start as u32..(start + part.len()) as u32
}

/// A method or request target: httparse hands both out as `str` (it checks
/// them to be UTF-8), so the fallback to empty is never taken.
fn text<'a>(raw: &'a [u8], span: &Range<u32>) -> &'a str {
    std::str::from_utf8(&raw[span.start as usize..span.end as usize]).unwrap_or_default()
}

impl Fields {
    fn new(head: &[u8], parsed: &[httparse::Header<'_>], minor_version: u8) -> Fields {
        let headers: Vec<HeaderSpan> = parsed
            .iter()
            .map(|h| HeaderSpan {
                name: span(head, h.name.as_bytes()),
                value: span(head, h.value),
            })
            .collect();
        let mut fields = Fields {
            raw: head.to_vec(),
            headers,
            verbatim: false,
        };
        // httparse skips empty lines before the start line; they are not
        // passed on.
        let starts_clean = !matches!(head.first(), Some(b'\r' | b'\n'));
        let lengths = fields
            .iter()
            .filter(|(name, _)| is_content_length(name))
            .count();
        fields.verbatim = minor_version == 1
            && starts_clean
            && crlf_only(head)
            && lengths <= 1
            && !fields.iter().any(|(name, _)| is_hop_by_hop(name));
        fields
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers
            .iter()
            .map(|h| (self.bytes(&h.name), self.bytes(&h.value)))
    }

    fn bytes(&self, span: &Range<u32>) -> &[u8] {
        &self.raw[span.start as usize..span.end as usize]
    }
}

/// Every line ends in CRLF: httparse also takes a bare LF, which an
/// upstream might read differently, so such a head is always rewritten.
fn crlf_only(head: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', head).all(|at| at > 0 && head[at - 1] == b'\r')
}

/// Header lookups shared by requests and responses.
trait Headers {
    fn fields(&self) -> &Fields;

    /// Every header line as (name, value), in order.
    fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields().iter()
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value)
    }

    /// True if any `name` header lists `token` (comma-separated, any case).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .flat_map(|(_, value)| value.split(|b| *b == b','))
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    }

    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    fn minor_version(&self) -> u8;

    /// Body framing from `Transfer-Encoding` and `Content-Length`
    /// (RFC 9112 §6.3). Anything an upstream could read another way is
    /// refused, because that is how requests get smuggled: both headers at
    /// once; a coding list other than exactly `chunked`, across every
    /// `Transfer-Encoding` line (`chunked, identity`, or `chunked` on two
    /// lines, which a reader that takes only the first or the last line
    /// sees differently); `Transfer-Encoding` in HTTP/1.0 (§6.1: faulty
    /// framing); lengths that differ, or one that is not all digits
    /// (`+5` parses as 5 in Rust, not everywhere). Identical lengths are
    /// one length, and are sent on as one (`encode_headers`).
    fn declared_framing(&self) -> Result<Option<Framing>, HeadError> {
        let mut codings = self
            .headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"transfer-encoding"))
            .flat_map(|(_, value)| value.split(|b| *b == b','));
        let chunked = match (codings.next(), codings.next()) {
            (None, _) => false,
            (Some(only), None) if only.trim_ascii().eq_ignore_ascii_case(b"chunked") => true,
            _ => return Err(HeadError::Framing("unsupported transfer-encoding")),
        };
        if chunked && self.minor_version() == 0 {
            return Err(HeadError::Framing("transfer-encoding in HTTP/1.0"));
        }
        let mut lengths = self
            .headers()
            .filter(|(n, _)| is_content_length(n))
            .map(|(_, value)| value);
        match (chunked, lengths.next()) {
            (true, None) => Ok(Some(Framing::Chunked)),
            (true, Some(_)) => Err(HeadError::Framing(
                "both transfer-encoding and content-length",
            )),
            (false, None) => Ok(None),
            (false, Some(first)) => {
                if lengths.any(|other| other != first) {
                    return Err(HeadError::Framing("conflicting content-length"));
                }
                Ok(Some(Framing::Length(content_length(first)?)))
            }
        }
    }
}

/// A `Content-Length` value: digits only (RFC 9110 §8.6), within 64 bits.
/// httparse has already trimmed the whitespace around it.
fn content_length(value: &[u8]) -> Result<u64, HeadError> {
    let bad = HeadError::Framing("bad content-length");
    if value.is_empty() {
        return Err(bad);
    }
    value.iter().try_fold(0u64, |length, byte| match byte {
        b'0'..=b'9' => length
            .checked_mul(10)
            .and_then(|l| l.checked_add(u64::from(byte - b'0')))
            .ok_or(bad.clone()),
        _ => Err(bad.clone()),
    })
}

fn is_content_length(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"content-length")
}

impl Headers for RequestHead {
    fn fields(&self) -> &Fields {
        &self.fields
    }

    fn minor_version(&self) -> u8 {
        self.minor_version
    }
}

impl Headers for ResponseHead {
    fn fields(&self) -> &Fields {
        &self.fields
    }

    fn minor_version(&self) -> u8 {
        self.minor_version
    }
}

impl RequestHead {
    pub fn method(&self) -> &str {
        text(&self.fields.raw, &self.method)
    }

    /// A field's value by its name (any case), the first if repeated.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        Headers::header(self, name)
    }

    pub fn target(&self) -> &str {
        text(&self.fields.raw, &self.target)
    }

    fn is_connect(&self) -> bool {
        self.method().eq_ignore_ascii_case("CONNECT")
    }

    pub fn framing(&self) -> Result<Framing, HeadError> {
        Ok(self.declared_framing()?.unwrap_or(Framing::None))
    }

    /// Whether the client keeps the connection open after this exchange.
    pub fn keep_alive(&self) -> bool {
        if self.minor_version == 0 {
            self.has_token("connection", "keep-alive")
        } else {
            !self.has_token("connection", "close")
        }
    }

    /// An `Upgrade` (WebSocket and the like) or `CONNECT`: after a 101 or a
    /// 2xx, the connection becomes a tunnel.
    pub fn wants_tunnel(&self) -> bool {
        self.is_connect()
            || (self.has_token("connection", "upgrade") && self.header("upgrade").is_some())
    }

    pub fn expects_continue(&self) -> bool {
        self.header("expect")
            .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"100-continue"))
    }

    /// The `authority` label: the Host header, or the CONNECT target;
    /// borrowed from the head, as it is read for every request.
    pub fn authority(&self) -> Cow<'_, str> {
        if self.is_connect() {
            return Cow::Borrowed(self.target());
        }
        self.header("host")
            .map(|h| String::from_utf8_lossy(h.trim_ascii()))
            .unwrap_or_default()
    }

    /// Safe to send again on another connection: an idempotent method
    /// (nothing changes on the server if the first copy was processed before
    /// the connection failed) and no body (nothing was consumed from the
    /// client that could not be sent again). `framing` is this head's.
    pub fn retryable(&self, framing: Framing) -> bool {
        let idempotent = matches!(
            self.method(),
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        );
        idempotent && framing == Framing::None
    }

    /// The header lines that go on over HTTP/2 (see `end_to_end`).
    pub fn end_to_end(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        end_to_end(&self.fields)
    }

    /// The head as sent upstream: in its own version, hop-by-hop headers
    /// removed (but `Upgrade` kept for a tunnel request). An HTTP/1.0
    /// request stays HTTP/1.0, as Linkerd sends it: the upstream then
    /// frames its response for a 1.0 reader (never in chunks, which a 1.0
    /// client could not read). It asks for keep-alive, the hop's own
    /// `Connection`, so that the upstream connection may be pooled if the
    /// upstream agrees (`ResponseHead::keep_alive`).
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.encode_for(&ClientId::Untouched, out)
    }

    /// `encode`, with the `l5d-*` headers `client_id` says.
    pub fn encode_for(&self, client_id: &ClientId, out: &mut Vec<u8>) {
        let untouched = match client_id {
            ClientId::Untouched => true,
            ClientId::Strip => !self.fields.iter().any(|(name, _)| client_id.drops(name)),
            ClientId::Set { .. } => false,
        };
        if self.fields.verbatim && untouched {
            out.extend_from_slice(&self.fields.raw);
            return;
        }
        let tunnel = self.wants_tunnel();
        out.extend_from_slice(self.fields.bytes(&self.method));
        out.push(b' ');
        out.extend_from_slice(self.fields.bytes(&self.target));
        match (self.minor_version, tunnel) {
            (0, false) => out.extend_from_slice(b" HTTP/1.0\r\nconnection: keep-alive\r\n"),
            (0, true) => out.extend_from_slice(b" HTTP/1.0\r\n"),
            _ => out.extend_from_slice(b" HTTP/1.1\r\n"),
        }
        encode_headers(&self.fields, tunnel, client_id, out);
        if tunnel && !self.is_connect() {
            out.extend_from_slice(b"connection: upgrade\r\n");
        }
        if let Some(identity) = client_id.proven() {
            out.extend_from_slice(CLIENT_ID_HEADER.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(identity.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

impl ResponseHead {
    /// The header lines that go on over HTTP/2 (see `end_to_end`).
    pub fn end_to_end(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        end_to_end(&self.fields)
    }

    /// The body framing of this response to a `method` request.
    pub fn framing(&self, method: &str) -> Result<Framing, HeadError> {
        let no_body = method.eq_ignore_ascii_case("HEAD")
            || (100..200).contains(&self.status)
            || self.status == 204
            || self.status == 304
            || (method.eq_ignore_ascii_case("CONNECT") && (200..300).contains(&self.status));
        if no_body {
            return Ok(Framing::None);
        }
        Ok(self.declared_framing()?.unwrap_or(Framing::UntilClose))
    }

    /// Whether the upstream keeps the connection open afterwards.
    pub fn keep_alive(&self) -> bool {
        if self.minor_version == 0 {
            self.has_token("connection", "keep-alive")
        } else {
            !self.has_token("connection", "close")
        }
    }

    /// The head as sent to the client, hop-by-hop headers removed; with
    /// `close`, it tells the client the connection ends after this response.
    pub fn encode(&self, tunnel: bool, close: bool, out: &mut Vec<u8>) {
        if self.fields.verbatim && !tunnel && !close {
            out.extend_from_slice(&self.fields.raw);
            return;
        }
        // httparse reads a status as exactly three digits.
        let digits = [100, 10, 1].map(|place| b'0' + (self.status / place % 10) as u8);
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(&digits);
        out.push(b' ');
        out.extend_from_slice(self.fields.bytes(&self.reason));
        out.extend_from_slice(b"\r\n");
        encode_headers(&self.fields, tunnel, &ClientId::Untouched, out);
        if tunnel && self.status == 101 {
            out.extend_from_slice(b"connection: upgrade\r\n");
        } else if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Headers that describe one connection, not the message (RFC 9110
/// §7.6.1): `connection`, `keep-alive`, `proxy-connection`,
/// `proxy-authenticate`, `proxy-authorization`, `te` and `upgrade`. Every
/// header of every head is checked, so the length picks the one candidate.
fn is_hop_by_hop(name: &[u8]) -> bool {
    let candidate = match name.len() {
        2 => "te",
        7 => "upgrade",
        10 if name[0].eq_ignore_ascii_case(&b'c') => "connection",
        10 => "keep-alive",
        16 => "proxy-connection",
        18 => "proxy-authenticate",
        19 => "proxy-authorization",
        _ => return false,
    };
    name.eq_ignore_ascii_case(candidate.as_bytes())
}

/// The names a head's `Connection` headers list: hop-by-hop too.
fn connection_named(fields: &Fields) -> Vec<&[u8]> {
    fields
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"connection"))
        .flat_map(|(_, value)| value.split(|b| *b == b','))
        .map(|t| t.trim_ascii())
        .collect()
}

/// The header lines that describe the message itself, for HTTP/2: no
/// hop-by-hop header, no `Transfer-Encoding` (HTTP/2 frames bodies
/// itself), one `Content-Length`.
fn end_to_end(fields: &Fields) -> impl Iterator<Item = (&[u8], &[u8])> {
    let named = connection_named(fields);
    let mut length_kept = false;
    fields.iter().filter(move |(name, _)| {
        let dropped = is_hop_by_hop(name)
            || name.eq_ignore_ascii_case(b"transfer-encoding")
            || named.iter().any(|n| n.eq_ignore_ascii_case(name))
            || (is_content_length(name) && std::mem::replace(&mut length_kept, true));
        !dropped
    })
}

fn encode_headers(fields: &Fields, tunnel: bool, client_id: &ClientId, out: &mut Vec<u8>) {
    // Headers named in Connection are hop-by-hop too.
    let named = connection_named(fields);
    // Framing has checked that repeated lengths are identical: one goes on.
    let mut length_sent = false;
    for (name, value) in fields.iter() {
        let hop = is_hop_by_hop(name) || named.iter().any(|n| n.eq_ignore_ascii_case(name));
        let keep_upgrade = tunnel && name.eq_ignore_ascii_case(b"upgrade");
        if (hop && !keep_upgrade) || client_id.drops(name) {
            continue;
        }
        if is_content_length(name) {
            if length_sent {
                continue;
            }
            length_sent = true;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests;
