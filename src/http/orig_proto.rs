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

use std::future::poll_fn;
use std::io::{self, Write as _};
use std::time::Instant;

use bytes::Bytes;
use futures_lite::future;
use h2::client::SendRequest;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};

use super::answer::ProxyError;
use super::h1::{pooled_or_new, H1Proxy, Outcome};
use super::h2::{send_data, H2Proxy, Pending, StreamFailure};
use super::head::{parse_response, Framing, HeadError, RequestHead, ResponseHead};
use super::io::{BodyError, BodyReader, HttpIo, ReadHeadError};
use super::pool::Upstream;
use super::ClientId;
use crate::io::{ConnError, Deadline};
use crate::metrics::{Expiry, ResponseClass};

/// Marks a message as HTTP/1 carried over HTTP/2, with its version.
pub const ORIG_PROTO: &str = "l5d-orig-proto";

/// Most bytes of an HTTP/2 body gathered before they are written to an
/// HTTP/1 peer: frames that are already in go out in one write.
const MAX_GATHERED_BYTES: usize = 64 * 1024;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Why a body could not be carried from one protocol to the other.
enum PumpError {
    /// Reading the HTTP/1 side.
    Read(BodyError),
    /// Writing the HTTP/1 side.
    Write(io::Error),
    /// The HTTP/2 side failed (a reset, or its connection).
    Stream(h2::Error),
}

/// What an upgraded request heard first.
enum Upgraded {
    Response(Result<Response<RecvStream>, h2::Error>),
    Upload(PumpError),
    /// The route's response timeout.
    Expired,
}

/// How the framing of an HTTP/2 response changes for an HTTP/1 client.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reframed {
    /// No body, or one with its `Content-Length`: as it is.
    AsIs,
    /// Ended with its head: `Content-Length: 0` is added.
    Empty,
    Chunked,
    /// An HTTP/1.0 client: the body ends with the connection.
    UntilClose,
}

impl H1Proxy<'_> {
    /// Sends one request as a stream on mesh peer endpoint `index`'s
    /// HTTP/2 connection (`sender`) and passes its response back as
    /// HTTP/1. The body streams while the response is awaited; a response
    /// that comes before the whole body closes the client's connection
    /// after it.
    pub(super) async fn upgraded(
        &self,
        client: &mut HttpIo,
        head: &RequestHead,
        framing: Framing,
        index: usize,
        mut sender: SendRequest<Bytes>,
        deadline: &Deadline,
    ) -> Result<Outcome, ConnError> {
        let balancer = &self.route.balancer;
        let request = match upgrade_request(head, self.client_id, balancer.addr(index)) {
            Ok(request) => request,
            Err(err) => {
                let error = ProxyError::BadRequest(err);
                return Ok(Outcome::ProxyError { error, close: true });
            }
        };
        let mut body = BodyReader::new(framing);
        let mut pending = Pending::new(balancer, index);
        let sent = Instant::now();
        let (response, upload) = match sender.send_request(request, body.is_done()) {
            Ok(sent) => sent,
            Err(err) => {
                let error = ProxyError::H2Send(err);
                return Ok(Outcome::ProxyError { error, close: true });
            }
        };
        if head.expects_continue() && !body.is_done() {
            client
                .write_all(CONTINUE)
                .await
                .map_err(ConnError::ClientWrite)?;
        }
        let timeout = self.route.response_timeout;
        if let Some(timeout) = timeout {
            deadline.arm(timeout);
        }
        let next = {
            let response = async { Upgraded::Response(response.await) };
            let upload = async {
                let mut upload = upload;
                match to_stream(client, &mut body, &mut upload).await {
                    Ok(()) => future::pending().await,
                    Err(err) => Upgraded::Upload(err),
                }
            };
            let expired = async {
                deadline.wait().await;
                Upgraded::Expired
            };
            future::or(response, future::or(upload, expired)).await
        };
        deadline.disarm();
        let error = match next {
            Upgraded::Response(Ok(response)) => {
                pending.latency = Some(sent.elapsed());
                drop(pending);
                return self
                    .downloaded(client, head, response, body.is_done())
                    .await;
            }
            Upgraded::Response(Err(err)) => ProxyError::H2Upstream(err),
            Upgraded::Expired => {
                let timeout = timeout.unwrap_or_default();
                self.expired(Expiry::Response, timeout);
                ProxyError::ResponseTimeout(timeout)
            }
            Upgraded::Upload(PumpError::Read(BodyError::Chunked(err))) => ProxyError::BadBody(err),
            Upgraded::Upload(PumpError::Read(err)) => {
                return Err(ConnError::ClientRead(io::Error::other(err.to_string())));
            }
            Upgraded::Upload(PumpError::Stream(err)) => ProxyError::H2Send(err),
            Upgraded::Upload(PumpError::Write(err)) => ProxyError::SendRequest(err),
        };
        let close = !body.is_done();
        Ok(Outcome::ProxyError { error, close })
    }

    /// Passes an HTTP/2 response to the HTTP/1 client; `uploaded`: the
    /// client's whole request body was read.
    async fn downloaded(
        &self,
        client: &HttpIo,
        head: &RequestHead,
        response: Response<RecvStream>,
        uploaded: bool,
    ) -> Result<Outcome, ConnError> {
        let (parts, from) = response.into_parts();
        let status = parts.status.as_u16();
        let no_body = head.method().eq_ignore_ascii_case("HEAD")
            || parts.status.is_informational()
            || status == 204
            || status == 304;
        let reframed = if no_body || parts.headers.contains_key(CONTENT_LENGTH) {
            Reframed::AsIs
        } else if from.is_end_stream() {
            Reframed::Empty
        } else if head.minor_version == 1 {
            Reframed::Chunked
        } else {
            Reframed::UntilClose
        };
        let keep = head.keep_alive()
            && uploaded
            && reframed != Reframed::UntilClose
            && !self.shard.draining.is_triggered();
        let mut out = Vec::with_capacity(1024);
        encode_response_head(&parts, reframed, keep, &mut out);
        let written = if no_body {
            client.write_all(&out).await.map_err(PumpError::Write)
        } else {
            to_http1(from, client, reframed == Reframed::Chunked, out).await
        };
        written.map_err(|err| match err {
            PumpError::Stream(err) => ConnError::UpstreamRead(h2_error(err)),
            PumpError::Write(err) => ConnError::ClientWrite(err),
            PumpError::Read(err) => ConnError::UpstreamRead(io::Error::other(err.to_string())),
        })?;
        Ok(Outcome::Responded { status, keep })
    }
}

/// The HTTP/2 request an HTTP/1 head becomes: its target as the URI (an
/// origin-form one with the `Host`, or `fallback` without one), its
/// end-to-end headers with the `l5d-*` ones `client_id` says, and the
/// `l5d-orig-proto` mark.
fn upgrade_request(
    head: &RequestHead,
    client_id: &ClientId,
    fallback: std::net::SocketAddr,
) -> Result<Request<()>, HeadError> {
    let unfit = |what: &str| HeadError::Malformed(format!("{what} does not fit HTTP/2"));
    let method = Method::from_bytes(head.method().as_bytes()).map_err(|_| unfit("the method"))?;
    let target = head.target();
    let absolute_form = !target.starts_with('/') && target != "*";
    let uri = if absolute_form {
        Uri::try_from(target).map_err(http::Error::from)
    } else {
        let mut authority = head.authority();
        if authority.is_empty() {
            authority = fallback.to_string();
        }
        Uri::builder()
            .scheme("http")
            .authority(authority)
            .path_and_query(target)
            .build()
    };
    let uri = uri.map_err(|_| unfit("the target"))?;
    let mut headers = HeaderMap::new();
    for (name, value) in head.end_to_end() {
        let name = HeaderName::from_bytes(name).map_err(|_| unfit("a header name"))?;
        let value = HeaderValue::from_bytes(value).map_err(|_| unfit("a header value"))?;
        headers.append(name, value);
    }
    client_id.apply(&mut headers);
    let mark = match (head.minor_version, absolute_form) {
        (0, false) => "HTTP/1.0",
        (0, true) => "HTTP/1.0; absolute-form",
        (_, false) => "HTTP/1.1",
        (_, true) => "HTTP/1.1; absolute-form",
    };
    headers.insert(ORIG_PROTO, HeaderValue::from_static(mark));
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// An HTTP/2 response's head for an HTTP/1 client (`l5d-orig-proto`
/// dropped), framed as `reframed` says.
fn encode_response_head(
    parts: &http::response::Parts,
    reframed: Reframed,
    keep: bool,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    let reason = parts.status.canonical_reason().unwrap_or_default();
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name != ORIG_PROTO {
            header_line(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    match reframed {
        Reframed::Empty => out.extend_from_slice(b"content-length: 0\r\n"),
        Reframed::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Reframed::AsIs | Reframed::UntilClose => {}
    }
    if !keep {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

impl H2Proxy {
    /// Whether a stream is HTTP/1 that a mesh peer carried over HTTP/2:
    /// `Some(absolute_form)` if so. Only a client that proved its identity
    /// is taken at its word (any other has its `l5d-*` headers removed).
    pub(super) fn orig_proto(&self, request: &Request<RecvStream>) -> Option<bool> {
        self.client_id.proven()?;
        let mark = request.headers().get(ORIG_PROTO)?.as_bytes();
        Some(mark.ends_with(b"absolute-form"))
    }

    /// Sends an HTTP/1 request that came as a stream to the application,
    /// over one of the route's HTTP/1 connections; returns it with the
    /// response head. A pooled connection found closed before any
    /// response byte is retried once on another, if the request has no
    /// body and an idempotent method.
    pub(super) async fn downgraded(
        &self,
        request: Request<RecvStream>,
        absolute_form: bool,
    ) -> Result<(Upstream, ResponseHead), StreamFailure> {
        let (mut parts, body) = request.into_parts();
        parts.headers.remove(ORIG_PROTO);
        self.client_id.apply(&mut parts.headers);
        let chunked = !body.is_end_stream() && !parts.headers.contains_key(CONTENT_LENGTH);
        let retryable = body.is_end_stream() && parts.method.is_idempotent();
        let mut body = (!body.is_end_stream()).then_some(body);
        let mut head = Vec::with_capacity(1024);
        encode_request_head(&parts, absolute_form, chunked, &mut head);
        let balancer = &self.route.balancer;
        let mut tried = Vec::new();
        let mut retried = false;
        let mut last_error = ProxyError::NoEndpoint;
        while let Some(index) = balancer.pick(&tried) {
            let checked = retryable && !retried;
            let upstream = pooled_or_new(&self.shard, &self.route, index, checked).await;
            let mut upstream = match upstream {
                Ok(upstream) => upstream,
                Err(error) => {
                    tried.push(index);
                    last_error = error;
                    continue;
                }
            };
            let mut pending = Pending::new(balancer, index);
            let sent = Instant::now();
            let response = self
                .exchange(&mut upstream, head.clone(), body.take(), chunked)
                .await;
            match response {
                Ok(response) => {
                    pending.latency = Some(sent.elapsed());
                    return Ok((upstream, response));
                }
                Err(StreamFailure::Answer(error)) if upstream.reused && retryable && !retried => {
                    upstream.mark_failed();
                    retried = true;
                    last_error = error;
                }
                Err(failure) => {
                    upstream.mark_failed();
                    return Err(failure);
                }
            }
        }
        Err(StreamFailure::Answer(last_error))
    }

    /// Writes the request (`head`, then `body` re-framed) and reads the
    /// final response head, within the route's response timeout.
    async fn exchange(
        &self,
        upstream: &mut Upstream,
        head: Vec<u8>,
        body: Option<RecvStream>,
        chunked: bool,
    ) -> Result<ResponseHead, StreamFailure> {
        let written = match body {
            Some(body) => to_http1(body, &upstream.io, chunked, head).await,
            None => upstream.io.write_all(&head).await.map_err(PumpError::Write),
        };
        written.map_err(|err| match err {
            PumpError::Stream(err) => StreamFailure::Reset(err.reason().unwrap_or(Reason::CANCEL)),
            PumpError::Write(err) => StreamFailure::Answer(ProxyError::SendRequest(err)),
            PumpError::Read(_) => StreamFailure::Reset(Reason::INTERNAL_ERROR),
        })?;
        let final_head = async {
            loop {
                match upstream.io.read_head(parse_response).await {
                    Ok(Some(response)) if response.status == 101 => {
                        let err = HeadError::Malformed("101 to a request without Upgrade".into());
                        return Err(ProxyError::BadResponse(ReadHeadError::Head(err)));
                    }
                    // Interim responses stay here: the body was sent already.
                    Ok(Some(response)) if response.status < 200 => continue,
                    Ok(Some(response)) => return Ok(response),
                    Ok(None) => return Err(ProxyError::ClosedBeforeResponse),
                    Err(err) => return Err(ProxyError::BadResponse(err)),
                }
            }
        };
        let response = match self.route.response_timeout {
            None => final_head.await,
            Some(timeout) => match self.shard.deadlines.timeout(timeout, final_head).await {
                Some(response) => response,
                None => {
                    let metrics = &self.shard.metrics;
                    self.route
                        .metrics
                        .expired(metrics, Expiry::Response, timeout);
                    Err(ProxyError::ResponseTimeout(timeout))
                }
            },
        };
        response.map_err(StreamFailure::Answer)
    }

    /// Passes the application's HTTP/1 response to the stream, marked
    /// with its version; the connection goes back to the pool if it can
    /// carry another request.
    pub(super) async fn respond_downgraded(
        &self,
        respond: &mut SendResponse<Bytes>,
        mut upstream: Upstream,
        response: ResponseHead,
        method: &Method,
    ) -> Result<ResponseClass, StreamFailure> {
        let bad = |err| StreamFailure::Answer(ProxyError::BadResponse(ReadHeadError::Head(err)));
        let unfit = || bad(HeadError::Malformed("a header does not fit HTTP/2".into()));
        let framing = response.framing(method.as_str()).map_err(bad)?;
        let mut headers = HeaderMap::new();
        for (name, value) in response.end_to_end() {
            let name = HeaderName::from_bytes(name).map_err(|_| unfit())?;
            let value = HeaderValue::from_bytes(value).map_err(|_| unfit())?;
            headers.append(name, value);
        }
        let version = match response.minor_version {
            0 => "HTTP/1.0",
            _ => "HTTP/1.1",
        };
        headers.insert(ORIG_PROTO, HeaderValue::from_static(version));
        let mut head = Response::new(());
        *head.status_mut() = StatusCode::from_u16(response.status).map_err(|_| unfit())?;
        *head.headers_mut() = headers;
        let mut body = BodyReader::new(framing);
        let mut to = respond
            .send_response(head, body.is_done())
            .map_err(|_| StreamFailure::Reset(Reason::CANCEL))?;
        if let Err(err) = to_stream(&mut upstream.io, &mut body, &mut to).await {
            upstream.mark_failed();
            if !matches!(err, PumpError::Stream(_)) {
                // A cut body is never passed off as complete.
                to.send_reset(Reason::INTERNAL_ERROR);
            }
        } else if response.keep_alive() && framing != Framing::UntilClose {
            self.route.pool.checkin(upstream);
        }
        Ok(ResponseClass {
            status_code: response.status,
            grpc_status: None,
        })
    }
}

/// The HTTP/1.1 head of a request that came as a stream: the `Host` from
/// the URI's authority when the stream had none, `chunked` when its body
/// has no length.
fn encode_request_head(
    parts: &http::request::Parts,
    absolute_form: bool,
    chunked: bool,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    if absolute_form {
        out.extend_from_slice(parts.uri.to_string().as_bytes());
    } else {
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        out.extend_from_slice(target.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !parts.headers.contains_key(HOST) {
        if let Some(authority) = parts.uri.authority() {
            header_line(out, b"host", authority.as_str().as_bytes());
        }
    }
    for (name, value) in &parts.headers {
        header_line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
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
/// with the stream's trailers; otherwise they are dropped.
async fn to_http1(
    mut from: RecvStream,
    to: &HttpIo,
    chunked: bool,
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
        let data = data.map_err(PumpError::Stream)?;
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
        let trailers = poll_fn(|cx| from.poll_trailers(cx)).await;
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

fn h2_error(err: h2::Error) -> io::Error {
    io::Error::other(err.to_string())
}
