//! `H1Proxy`: HTTP/1.1 from one client connection, request by request, each
//! sent to an endpoint the request balancer picks, over pooled upstream
//! connections. Bodies stream through with their framing unchanged;
//! pipelined requests are answered in order because each is read only after
//! the previous response went out. After a 101 to an `Upgrade` or a 2xx to
//! a `CONNECT`, the connection is handed back as a tunnel ([`Served`]).
//!
//! Errors the client can act on become responses with a
//! `ringside-proxy-error` header: 400 and 431 for requests we cannot parse,
//! 502 when no endpoint could be reached, 503 when none is available. An
//! upstream that fails mid-response closes the client's connection: a cut
//! body is never passed off as complete.

use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use futures_lite::future;

use super::answer::{proxy_response, ProxyError};
use super::head::{parse_request, parse_response, Framing, HeadError, RequestHead, ResponseHead};
use super::io::{BodyError, HttpIo, ReadHeadError};
use super::pool::Upstream;
use super::{target_path, target_query, ClientId, HttpRoute, RequestAuthz};
use crate::discovery::inbound::RequestParts;
use crate::io::{ConnError, Deadline};
use crate::metrics::{Expiry, ResponseClass};
use crate::shard::Shard;
use upstream::Via;

/// How a client connection left the HTTP/1 proxy.
pub enum Served {
    /// Done: the client closed or was answered with a close.
    Closed,
    /// A 101 or a 2xx to `CONNECT` went out: from here on the client and
    /// `upstream` exchange opaque bytes, which the caller carries. Bytes
    /// either side sent early are still buffered in its `HttpIo`.
    Tunnel(Box<Upstream>),
}

/// How one request ended, for the response metrics.
pub(super) enum Outcome {
    /// A response went out; `keep` says whether the client connection
    /// stays open for another request.
    Responded { status: u16, keep: bool },
    /// The connection becomes a tunnel to `upstream`.
    Tunneled { status: u16, upstream: Upstream },
    /// Nothing was sent yet: answer with a proxy error.
    ProxyError { error: ProxyError, close: bool },
}

/// How a final response went out.
enum Responded {
    /// With its body; `keep` for the client connection, `reusable` for the
    /// upstream one.
    Done {
        status: u16,
        keep: bool,
        reusable: bool,
    },
    /// A 101 or a 2xx to `CONNECT`: a tunnel follows.
    Tunnel { status: u16 },
}

/// What a request waiting for its response heard first.
enum Waited {
    Response(Result<Option<ResponseHead>, ReadHeadError>),
    /// Client bytes: a body sent without waiting for a 100.
    Body,
    /// The response timeout.
    Expired,
}

/// A failure inside one exchange.
enum Failure {
    /// Safe to send again on another connection.
    Retry,
    /// The exchange cannot go on; the connection ends with this error.
    Fatal(ConnError),
    /// Answer the client with a proxy error instead.
    Answer(ProxyError),
}

pub struct H1Proxy<'a> {
    pub shard: &'a Shard,
    pub route: &'a HttpRoute,
    /// What the requests' `l5d-*` headers get (inbound: the client's
    /// proven identity, or none).
    pub client_id: &'a ClientId,
    /// How an inbound policy judged this client (`None`: no policy
    /// applies): its requests are counted, and answered 403 if refused.
    pub authz: Option<RequestAuthz>,
}

impl H1Proxy<'_> {
    /// Serves requests until the client closes, asks to close, or fails.
    /// `first` is an already connected upstream to use first, lent: owned
    /// here, an `async fn` would keep it twice in every idle keep-alive
    /// connection; boxed, it costs an idle connection that never had one,
    /// or has used it, 8 bytes instead of 128.
    ///
    /// Each request waits twice on the client, each with a timeout on the
    /// connection's one deadline: for the first byte of its head (idle
    /// keep-alive: closed quietly after `client_idle`), then for the rest of
    /// the head (`head_read`: answered with a 408). Only the first wait is
    /// a state of this future: reading the head and the exchange are
    /// boxed, once per request, so that what an idle connection holds is
    /// the wait for its next request and nothing that serves one. For the
    /// same reason neither this nor `next_request_begins` is an `async fn`,
    /// which keeps its arguments twice.
    #[allow(clippy::manual_async_fn)]
    pub fn serve<'a>(
        &'a self,
        client: &'a mut HttpIo,
        first: &'a mut Option<Box<Upstream>>,
    ) -> impl Future<Output = Result<Served, ConnError>> + 'a {
        async move {
            let deadline = self.shard.deadlines.deadline();
            loop {
                let begun = !client.unread().is_empty()
                    || self.next_request_begins(client, &deadline).await?;
                if !begun {
                    return Ok(Served::Closed);
                }
                if let Some(served) = Box::pin(self.next_request(client, first, &deadline)).await? {
                    return Ok(served);
                }
            }
        }
    }

    /// Waits, idle, for the first bytes of the next request: false when
    /// the client closed, the idle timeout passed, or the shard drains.
    #[allow(clippy::manual_async_fn)]
    fn next_request_begins<'a>(
        &'a self,
        client: &'a mut HttpIo,
        deadline: &'a Deadline,
    ) -> impl Future<Output = Result<bool, ConnError>> + 'a {
        async move {
            // A draining shard closes idle keep-alive connections at once
            // instead of waiting out the grace period.
            deadline.arm_until_drain(self.shard.timeouts.client_idle);
            let idle_over = async {
                deadline.wait().await;
                None
            };
            match future::or(async { Some(client.wait_for_message().await) }, idle_over).await {
                Some(Ok(0)) => Ok(false),
                Some(Ok(_)) => Ok(true),
                Some(Err(err)) => Err(ConnError::ClientRead(err)),
                None => {
                    if deadline.expired() {
                        self.expired(Expiry::ClientIdle, self.shard.timeouts.client_idle);
                    }
                    Ok(false)
                }
            }
        }
    }

    /// Reads the head of a request whose first bytes are in (or, pipelined,
    /// buffered), then proxies it or answers why not; `None` when the
    /// client connection stays open for another.
    async fn next_request(
        &self,
        client: &mut HttpIo,
        first: &mut Option<Box<Upstream>>,
        deadline: &Deadline,
    ) -> Result<Option<Served>, ConnError> {
        let head_read = self.shard.timeouts.head_read;
        deadline.arm(head_read);
        let next = future::or(
            async { Some(client.read_head(parse_request).await) },
            async {
                deadline.wait().await;
                None
            },
        );
        let next = match first.as_mut() {
            // Boxed: only a connection's first head races the hold, and
            // the others should not carry room for it.
            Some(upstream) if upstream.speculative.is_some() => {
                Box::pin(future::or(next, self.hold(first))).await
            }
            _ => next.await,
        };
        let Some(next) = next else {
            self.expired(Expiry::HeadRead, head_read);
            let refusal = ProxyError::HeadReadTimeout(head_read);
            return self.refuse(client, refusal).await.map(Some);
        };
        deadline.disarm();
        let refusal = match next {
            Ok(Some(head)) => {
                // A keep-alive connection's next request goes to the
                // route's newest endpoints (`h1_follow`).
                let newer = self.newer_route(first);
                let moved = newer.as_deref().map(|route| self.on(route));
                let proxy = moved.as_ref().unwrap_or(self);
                return proxy.request(client, head, first, deadline).await;
            }
            Ok(None) => return Ok(Some(Served::Closed)),
            Err(ReadHeadError::Io(err)) => return Err(ConnError::ClientRead(err)),
            Err(ReadHeadError::Truncated) => {
                return Err(ConnError::ClientRead(io::ErrorKind::UnexpectedEof.into()))
            }
            Err(ReadHeadError::Head(HeadError::TooLarge)) => ProxyError::HeadTooLarge,
            Err(ReadHeadError::Head(err)) => ProxyError::BadRequest(err),
        };
        self.refuse(client, refusal).await.map(Some)
    }

    /// Proxies one request whose head is read; `None` when the client
    /// connection stays open for another. `deadline` is free for the
    /// response timeout.
    async fn request(
        &self,
        client: &mut HttpIo,
        head: RequestHead,
        first: &mut Option<Box<Upstream>>,
        deadline: &Deadline,
    ) -> Result<Option<Served>, ConnError> {
        if let Some(authz) = &self.authz {
            // Made and dropped in a block: a local the refusal's await
            // outlived would keep its room in every connection's task.
            let judged = {
                let header = |name: &str| head.header(name);
                let request = RequestParts {
                    method: head.method(),
                    path: target_path(head.target()),
                    query: target_query(head.target()),
                    header: &header,
                };
                authz.judge(&self.shard.metrics, &request)
            };
            if let Err(refusal) = judged {
                return self.refuse(client, refusal).await.map(Some);
            }
        }
        let framing = match head.framing() {
            Ok(framing) => framing,
            Err(err) => {
                return self
                    .refuse(client, ProxyError::BadRequest(err))
                    .await
                    .map(Some)
            }
        };
        if framing == Framing::Chunked {
            if let Err(err) = client.check_buffered_chunks() {
                return self
                    .refuse(client, ProxyError::BadBody(err))
                    .await
                    .map(Some);
            }
        }
        let authority = self.shard.metrics.authority(&head.authority());
        let labels = self
            .route
            .metrics
            .request_labels(authority, self.client_id.proven());
        let labels = self.shard.metrics.request(labels);
        let started = Instant::now();
        let outcome = self.exchange(client, &head, framing, first, deadline).await;
        let (status, keep) = match outcome {
            Ok(Outcome::Responded { status, keep }) => (status, keep),
            Ok(Outcome::Tunneled { status, upstream }) => {
                // Counted when the tunnel starts: its latency is the
                // response head's, not the tunnel's lifetime.
                self.shard
                    .metrics
                    .responded(&labels, class(status), started.elapsed());
                return Ok(Some(Served::Tunnel(Box::new(upstream))));
            }
            Ok(Outcome::ProxyError { error, close }) => {
                let close = close || !head.keep_alive();
                let written = client.write_all(&proxy_response(&error, close)).await;
                let status = error.status();
                self.shard
                    .metrics
                    .responded(&labels, class(status), started.elapsed());
                tracing::debug!(status, %error, "request failed");
                written.map_err(ConnError::ClientWrite)?;
                return Ok(close.then_some(Served::Closed));
            }
            Err(err) => return Err(err),
        };
        self.shard
            .metrics
            .responded(&labels, class(status), started.elapsed());
        Ok((!keep).then_some(Served::Closed))
    }

    /// Waits out the speculative hold of `first` (the detect quiet pause: a
    /// live client pauses less within a head), then gives that upstream to
    /// the pool: a stalled client must not keep an application connection
    /// of its own (the pool shares it and closes it once idle). Never
    /// resolves; it is raced against the head.
    async fn hold<T>(&self, first: &mut Option<Box<Upstream>>) -> T {
        let hold = self.shard.timeouts.detect_quiet_pause;
        let deadlines = &self.shard.deadlines;
        let _ = deadlines.timeout(hold, future::pending::<()>()).await;
        if let Some(upstream) = first.take() {
            self.expired(Expiry::SpeculativeHold, hold);
            self.route.checkin(*upstream);
        }
        future::pending().await
    }

    pub(super) fn expired(&self, expiry: Expiry, after: Duration) {
        let metrics = &self.shard.metrics;
        self.route.metrics.expired(metrics, expiry, after);
    }

    /// Answers a request that cannot be proxied, then ends the connection.
    /// It is counted as a request with an empty authority (its head could
    /// not be trusted for one) and a response with its status.
    async fn refuse(&self, client: &HttpIo, error: ProxyError) -> Result<Served, ConnError> {
        let status = error.status();
        tracing::debug!(status, %error, "request refused");
        let labels = self.shard.metrics.request(
            self.route
                .metrics
                .request_labels(self.shard.metrics.authority(""), self.client_id.proven()),
        );
        self.shard
            .metrics
            .responded(&labels, class(status), std::time::Duration::ZERO);
        client
            .write_all(&proxy_response(&error, true))
            .await
            .map_err(ConnError::ClientWrite)?;
        Ok(Served::Closed)
    }

    /// Sends one request and passes its response back, retrying once on
    /// another endpoint when the request could not have been processed.
    async fn exchange(
        &self,
        client: &mut HttpIo,
        head: &RequestHead,
        framing: Framing,
        first: &mut Option<Box<Upstream>>,
        deadline: &Deadline,
    ) -> Result<Outcome, ConnError> {
        let balancer = &self.route.balancer;
        let mut tried = Vec::new();
        // Only a request that could be sent again survives a pooled
        // connection found closed after the request went out.
        let retryable = head.retryable(framing);
        // What becomes a tunnel needs a connection of its own.
        let multiplex = !head.wants_tunnel();
        for attempt in 0..2 {
            // A retry takes no pooled connection unchecked.
            let unchecked_ok = retryable && attempt == 0;
            let via = self.upstream(&mut tried, first, multiplex, unchecked_ok);
            let mut upstream = match via.await {
                Ok(Via::Http1(upstream)) => upstream,
                Ok(Via::Http2 { index, sender }) => {
                    let upgraded = self.upgraded(client, head, framing, index, sender, deadline);
                    return Box::pin(upgraded).await;
                }
                Err(error) => {
                    return Ok(Outcome::ProxyError {
                        error,
                        close: framing != Framing::None,
                    })
                }
            };
            // It carries a request now: no longer speculative.
            upstream.speculative = None;
            let index = upstream.endpoint;
            balancer.started(index);
            let result = self
                .send(client, &mut upstream, head, framing, deadline)
                .await;
            match result {
                Ok(Responded::Done {
                    status,
                    keep,
                    reusable,
                }) => {
                    if reusable {
                        self.route.checkin(upstream);
                    }
                    return Ok(Outcome::Responded { status, keep });
                }
                Ok(Responded::Tunnel { status }) => {
                    return Ok(Outcome::Tunneled { status, upstream });
                }
                Err(Failure::Retry) if attempt == 0 => {
                    // The endpoint may take it again: only that one
                    // connection was stale.
                    tracing::debug!(endpoint = %balancer.addr(index), "stale upstream connection: retrying");
                    balancer.finished(index, None);
                    upstream.mark_failed();
                }
                Err(Failure::Retry) => {
                    balancer.finished(index, None);
                    upstream.mark_failed();
                    return Ok(Outcome::ProxyError {
                        error: ProxyError::ClosedBeforeResponse,
                        close: false,
                    });
                }
                Err(Failure::Answer(error)) => {
                    balancer.finished(index, None);
                    upstream.mark_failed();
                    return Ok(Outcome::ProxyError { error, close: true });
                }
                Err(Failure::Fatal(err)) => {
                    balancer.finished(index, None);
                    upstream.mark_failed();
                    return Err(err);
                }
            }
        }
        unreachable!("the second attempt always returns")
    }

    /// Writes the request and passes the response back. Once the request
    /// is sent, the route's response timeout runs on `deadline` until the
    /// final response head is in.
    async fn send(
        &self,
        client: &mut HttpIo,
        upstream: &mut Upstream,
        head: &RequestHead,
        framing: Framing,
        deadline: &Deadline,
    ) -> Result<Responded, Failure> {
        let sent = Instant::now();
        let mut out = Vec::with_capacity(1024);
        head.encode_for(self.client_id, &mut out);
        if let Err(err) = upstream.io.write_all(&out).await {
            return Err(if upstream.reused {
                Failure::Retry
            } else {
                Failure::Answer(ProxyError::SendRequest(err))
            });
        }
        // With `Expect: 100-continue` the body waits for the upstream's 100,
        // or for the client to send it anyway.
        let mut body_sent = framing == Framing::None;
        if !body_sent && !head.expects_continue() {
            send_body(client, upstream, framing, self.client_id).await?;
            body_sent = true;
        }

        if let Some(timeout) = self.route.response_timeout {
            deadline.arm(timeout);
        }
        loop {
            let response = async { Waited::Response(upstream.io.read_head(parse_response).await) };
            let body = async {
                if body_sent {
                    return future::pending().await;
                }
                let _ = client.wait_for_data().await;
                Waited::Body
            };
            let expired = async {
                deadline.wait().await;
                Waited::Expired
            };
            let next = match future::or(response, future::or(body, expired)).await {
                Waited::Response(next) => next,
                Waited::Body => {
                    // The client sent its body without waiting for a 100.
                    send_body(client, upstream, framing, self.client_id).await?;
                    body_sent = true;
                    continue;
                }
                Waited::Expired => {
                    let timeout = self.route.response_timeout.unwrap_or_default();
                    self.expired(Expiry::Response, timeout);
                    return Err(Failure::Answer(ProxyError::ResponseTimeout(timeout)));
                }
            };
            let response = match next {
                Ok(Some(response)) => response,
                Ok(None) | Err(ReadHeadError::Io(_))
                    if upstream.reused && head.retryable(framing) =>
                {
                    return Err(Failure::Retry);
                }
                Ok(None) => return Err(Failure::Answer(ProxyError::ClosedBeforeResponse)),
                Err(err) => return Err(Failure::Answer(ProxyError::BadResponse(err))),
            };
            if (100..200).contains(&response.status) && response.status != 101 {
                let mut interim = Vec::new();
                response.encode(false, false, &mut interim);
                client.write_all(&interim).await.map_err(client_write)?;
                if response.status == 100 && !body_sent {
                    send_body(client, upstream, framing, self.client_id).await?;
                    body_sent = true;
                }
                continue;
            }
            deadline.disarm();
            self.route
                .balancer
                .finished(upstream.endpoint, Some(sent.elapsed()));
            return self
                .respond(client, upstream, head, response, body_sent)
                .await;
        }
    }

    /// Passes a final response (and its body) to the client.
    async fn respond(
        &self,
        client: &mut HttpIo,
        upstream: &mut Upstream,
        head: &RequestHead,
        response: ResponseHead,
        body_sent: bool,
    ) -> Result<Responded, Failure> {
        let status = response.status;
        let connect = head.method().eq_ignore_ascii_case("CONNECT");
        let tunnel =
            head.wants_tunnel() && (status == 101 || (connect && (200..300).contains(&status)));
        let framing = response
            .framing(head.method())
            .map_err(|err| Failure::Answer(ProxyError::BadResponse(ReadHeadError::Head(err))))?;
        // A client whose body was never asked for may still send it: the
        // connection cannot carry another request after this one.
        let keep = head.keep_alive()
            && body_sent
            && framing != Framing::UntilClose
            && !tunnel
            && !self.shard.draining.is_triggered();
        let mut out = Vec::with_capacity(1024);
        response.encode(tunnel, !keep && !tunnel, &mut out);
        let rest = upstream.io.take_buffered_body(framing, &mut out);
        client.write_all(&out).await.map_err(client_write)?;

        if tunnel {
            return Ok(Responded::Tunnel { status });
        }
        upstream
            .io
            .forward_body(client, rest, &ClientId::Untouched)
            .await
            .map_err(|err| {
                Failure::Fatal(match err {
                    BodyError::Write(e) => ConnError::ClientWrite(e),
                    BodyError::Read(e) => ConnError::UpstreamRead(e),
                    other => ConnError::UpstreamRead(io::Error::other(other.to_string())),
                })
            })?;
        let reusable = body_sent && response.keep_alive() && framing != Framing::UntilClose;
        Ok(Responded::Done {
            status,
            keep,
            reusable,
        })
    }
}

fn class(status_code: u16) -> ResponseClass {
    ResponseClass {
        status_code,
        grpc_status: None,
    }
}

fn client_write(err: io::Error) -> Failure {
    Failure::Fatal(ConnError::ClientWrite(err))
}

/// Passes the request body from the client to the upstream, its trailers
/// without the fields `client_id` drops. A malformed chunked body is
/// answered with a 400 (no final response went out yet), and the upstream
/// connection, left inside an unfinished request, closes.
async fn send_body(
    client: &mut HttpIo,
    upstream: &Upstream,
    framing: Framing,
    client_id: &ClientId,
) -> Result<(), Failure> {
    let result = client.forward_body(&upstream.io, framing, client_id).await;
    result.map_err(|err| match err {
        BodyError::Chunked(err) => Failure::Answer(ProxyError::BadBody(err)),
        BodyError::Read(e) => Failure::Fatal(ConnError::ClientRead(e)),
        BodyError::Write(e) => Failure::Fatal(ConnError::UpstreamWrite(e)),
        BodyError::Truncated => Failure::Fatal(ConnError::ClientRead(io::Error::new(
            io::ErrorKind::InvalidData,
            BodyError::Truncated.to_string(),
        ))),
    })
}

#[path = "h1_upstream.rs"]
mod upstream;

#[cfg(test)]
#[path = "h1_tests.rs"]
mod tests;
