//! Inbound: a stream a mesh peer marked as HTTP/1 goes to the application
//! as the HTTP/1 request it was, and the response back as a stream.
//!
//! "As it was" includes the version: an `HTTP/1.0` request reaches the
//! application as HTTP/1.0, as Linkerd's inbound sends it. RFC 9110 §6.2
//! would let a proxy send its own version, but an application may answer a
//! 1.0 request differently (a body until the close, no chunks), and the
//! response comes back framed whatever way it chose. Two things differ from
//! the client's bytes: such a request asks for keep-alive, so that the
//! pooled connection may carry another if the application agrees (the
//! `Connection` header is the hop's, not the client's); and a 1.0 request
//! whose body has no length, which 1.0 cannot frame, goes as HTTP/1.1 in
//! chunks.

use std::time::Instant;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream};
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};

use super::{header_line, to_http1, to_stream, PumpError, ORIG_PROTO};
use crate::http::answer::ProxyError;
use crate::http::h2::{let_the_connection_write, H2Proxy, Pending, StreamFailure};
use crate::http::head::{parse_response, Framing, HeadError, ResponseHead};
use crate::http::io::{BodyReader, ReadHeadError};
use crate::http::pool::{pooled_or_new, Upstream};
use crate::metrics::ResponseClass;

impl H2Proxy {
    /// Whether a stream is HTTP/1 that a mesh peer carried over HTTP/2:
    /// `Some(absolute_form)` if so. Only a client that proved its identity
    /// is taken at its word (any other has its `l5d-*` headers removed).
    pub(in crate::http) fn orig_proto(&self, request: &Request<RecvStream>) -> Option<bool> {
        self.client_id.proven()?;
        let mark = request.headers().get(ORIG_PROTO)?.as_bytes();
        Some(mark.ends_with(b"absolute-form"))
    }

    /// Sends an HTTP/1 request that came as a stream to the application,
    /// over one of the route's HTTP/1 connections; returns it with the
    /// response head. A pooled connection found closed before any
    /// response byte is retried once on another, if the request has no
    /// body and an idempotent method.
    pub(in crate::http) async fn downgraded(
        &self,
        request: Request<RecvStream>,
        absolute_form: bool,
    ) -> Result<(Upstream, ResponseHead), StreamFailure> {
        let (mut parts, body) = request.into_parts();
        let mark = parts.headers.remove(ORIG_PROTO);
        self.client_id.apply(&mut parts.headers);
        let chunked = !body.is_end_stream() && !parts.headers.contains_key(CONTENT_LENGTH);
        let http10 = !chunked && mark.is_some_and(|mark| mark.as_bytes().starts_with(b"HTTP/1.0"));
        let retryable = body.is_end_stream() && parts.method.is_idempotent();
        let mut body = (!body.is_end_stream()).then_some(body);
        let mut head = Vec::with_capacity(1024);
        encode_request_head(&parts, absolute_form, chunked, http10, &mut head);
        let balancer = &self.route.balancer;
        let mut tried = Vec::new();
        let mut retried = false;
        let mut last_error = ProxyError::NoEndpoint;
        while let Some(index) = balancer.pick(&tried) {
            // A retry takes no pooled connection unchecked.
            let unchecked_ok = retryable && !retried;
            let upstream = pooled_or_new(&self.shard, &self.route, index, unchecked_ok).await;
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
                .exchange(&mut upstream, &head, body.take(), chunked)
                .await;
            match response {
                Ok(response) => {
                    pending.latency = Some(sent.elapsed());
                    return Ok((upstream, response));
                }
                Err(StreamFailure::Answer(error))
                    if upstream.reused && retryable && !retried && found_closed(&error) =>
                {
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
        head: &[u8],
        body: Option<RecvStream>,
        chunked: bool,
    ) -> Result<ResponseHead, StreamFailure> {
        let written = match body {
            Some(body) => {
                let client_id = &self.client_id;
                to_http1(body, &upstream.io, chunked, client_id, head.to_vec()).await
            }
            None => upstream.io.write_all(head).await.map_err(PumpError::Write),
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
        let response = self.within_response_timeout(final_head).await;
        response
            .and_then(|head| head)
            .map_err(StreamFailure::Answer)
    }

    /// Passes the application's HTTP/1 response to the stream, marked
    /// with its version; the connection goes back to the pool if it can
    /// carry another request.
    pub(in crate::http) async fn respond_downgraded(
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
                // A cut body is never passed off as complete; but what
                // came of it goes out first, head included.
                let_the_connection_write().await;
                to.send_reset(Reason::INTERNAL_ERROR);
            }
        } else if response.keep_alive() && framing != Framing::UntilClose {
            self.route.checkin(upstream);
        }
        Ok(ResponseClass {
            status_code: response.status,
            grpc_status: None,
        })
    }
}

/// The HTTP/1.1 head of a request that came as a stream (HTTP/1.0 with
/// keep-alive when `http10`): the `Host` from the URI's authority when the
/// stream had none, `chunked` when its body has no length.
fn encode_request_head(
    parts: &http::request::Parts,
    absolute_form: bool,
    chunked: bool,
    http10: bool,
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
    match http10 {
        true => out.extend_from_slice(b" HTTP/1.0\r\nconnection: keep-alive\r\n"),
        false => out.extend_from_slice(b" HTTP/1.1\r\n"),
    }
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

/// The error of a pooled connection the application had closed: nothing
/// was answered, so the request may go again.
fn found_closed(error: &ProxyError) -> bool {
    matches!(
        error,
        ProxyError::ClosedBeforeResponse
            | ProxyError::SendRequest(_)
            | ProxyError::BadResponse(ReadHeadError::Io(_))
    )
}
