//! Outbound: an HTTP/1 request for a mesh peer becomes a stream on the
//! peer's HTTP/2 connection, and its response HTTP/1 again.

use std::io;
use std::time::Instant;

use bytes::Bytes;
use futures_lite::future;
use h2::client::SendRequest;
use h2::RecvStream;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};

use super::{header_line, to_http1, to_stream, PumpError, ORIG_PROTO};
use crate::http::answer::ProxyError;
use crate::http::h1::{H1Proxy, Outcome};
use crate::http::h2::Pending;
use crate::http::head::{Framing, HeadError, RequestHead};
use crate::http::io::{BodyError, BodyReader, HttpIo};
use crate::http::ClientId;
use crate::io::{ConnError, Deadline};
use crate::metrics::Expiry;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

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
    pub(in crate::http) async fn upgraded(
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
            let chunked = reframed == Reframed::Chunked;
            to_http1(from, client, chunked, &ClientId::Untouched, out).await
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
            authority = fallback.to_string().into();
        }
        Uri::builder()
            .scheme("http")
            .authority(authority.as_ref())
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

fn h2_error(err: h2::Error) -> io::Error {
    io::Error::other(err.to_string())
}
