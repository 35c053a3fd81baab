//! `H1Proxy`: HTTP/1.1 from one client connection, request by request, each
//! sent to an endpoint the request balancer picks, over pooled upstream
//! connections. Bodies stream through with their framing unchanged;
//! pipelined requests are answered in order because each is read only after
//! the previous response went out. `Upgrade` and `CONNECT` turn the
//! connection into an opaque tunnel after a 101 or a 2xx.
//!
//! Errors the client can act on become responses with a
//! `ringside-proxy-error` header: 400 and 431 for requests we cannot parse,
//! 502 when no endpoint could be reached, 503 when none is available. An
//! upstream that fails mid-response closes the client's connection: a cut
//! body is never passed off as complete.

use std::io;
use std::time::Instant;

use super::answer::proxy_response;
use super::head::{parse_request, parse_response, Framing, HeadError, RequestHead, ResponseHead};
use super::io::{BodyError, HttpIo, ReadHeadError};
use super::pool::{upstream, Upstream};
use crate::metrics::{RequestLabels, ResponseClass};
use crate::tcp::{tunnel, ForwardError, RouteState, ShardContext};

/// How one request ended, for the response metrics.
enum Outcome {
    /// A response went out; `keep` says whether the client connection
    /// stays open for another request.
    Responded { status: u16, keep: bool },
    /// The connection became a tunnel and has ended.
    Tunneled { status: u16 },
    /// Nothing was sent yet: answer with a proxy error.
    ProxyError {
        status: u16,
        why: String,
        close: bool,
    },
}

/// A failure inside one exchange.
enum Failure {
    /// Safe to send again on another connection.
    Retry,
    /// The exchange cannot go on; the connection ends with this error.
    Fatal(ForwardError),
    /// Answer the client with a proxy error instead.
    Answer { status: u16, why: String },
}

pub struct H1Proxy<'a> {
    pub shard: &'a ShardContext,
    pub route: &'a RouteState,
}

impl H1Proxy<'_> {
    /// Serves requests until the client closes, asks to close, or fails.
    /// `first` is an already connected upstream to use first.
    pub async fn serve(
        &self,
        client: &mut HttpIo,
        mut first: Option<Upstream>,
    ) -> Result<(), ForwardError> {
        loop {
            let idle = client.unread().is_empty();
            let next = async { Some(client.read_head(parse_request).await) };
            let drained = async {
                // A draining shard closes idle keep-alive connections at
                // once instead of waiting out the grace period for them.
                self.shard.draining.wait().await;
                None
            };
            let next = if idle {
                futures_lite::future::or(next, drained).await
            } else {
                next.await
            };
            let Some(next) = next else { return Ok(()) };
            let head = match next {
                Ok(Some(head)) => head,
                Ok(None) => return Ok(()),
                Err(ReadHeadError::Io(err)) => return Err(ForwardError::ClientRead(err)),
                Err(ReadHeadError::Truncated) => {
                    return Err(ForwardError::ClientRead(
                        io::ErrorKind::UnexpectedEof.into(),
                    ))
                }
                Err(ReadHeadError::Head(HeadError::TooLarge)) => {
                    return self.refuse(client, 431, "request head too large").await;
                }
                Err(ReadHeadError::Head(err)) => {
                    return self.refuse(client, 400, &err.to_string()).await;
                }
            };
            let framing = match head.framing() {
                Ok(framing) => framing,
                Err(err) => return self.refuse(client, 400, &err.to_string()).await,
            };
            let labels = RequestLabels {
                direction: self.route.route.direction,
                authority: head.authority(),
                target_addr: self.route.listen_label.clone(),
            };
            let labels = self.shard.metrics.request(labels);
            let started = Instant::now();
            let outcome = self.exchange(client, &head, framing, &mut first).await;
            let (status, keep) = match outcome {
                Ok(Outcome::Responded { status, keep }) => (status, keep),
                Ok(Outcome::Tunneled { status }) => (status, false),
                Ok(Outcome::ProxyError { status, why, close }) => {
                    let close = close || !head.keep_alive();
                    let written = client.write_all(&proxy_response(status, &why, close)).await;
                    self.shard
                        .metrics
                        .responded(&labels, class(status), started.elapsed());
                    tracing::debug!(status, error = %why, "request failed");
                    written.map_err(ForwardError::ClientWrite)?;
                    if close {
                        return Ok(());
                    }
                    continue;
                }
                Err(err) => return Err(err),
            };
            self.shard
                .metrics
                .responded(&labels, class(status), started.elapsed());
            if !keep {
                return Ok(());
            }
        }
    }

    /// Answers a request that cannot be proxied, then ends the connection.
    /// It is counted as a request with an empty authority (its head could
    /// not be trusted for one) and a response with its status.
    async fn refuse(&self, client: &HttpIo, status: u16, why: &str) -> Result<(), ForwardError> {
        tracing::debug!(status, error = why, "request refused");
        let labels = self.shard.metrics.request(RequestLabels {
            direction: self.route.route.direction,
            authority: String::new(),
            target_addr: self.route.listen_label.clone(),
        });
        self.shard
            .metrics
            .responded(&labels, class(status), std::time::Duration::ZERO);
        client
            .write_all(&proxy_response(status, why, true))
            .await
            .map_err(ForwardError::ClientWrite)
    }

    /// Sends one request and passes its response back, retrying once on
    /// another endpoint when the request could not have been processed.
    async fn exchange(
        &self,
        client: &mut HttpIo,
        head: &RequestHead,
        framing: Framing,
        first: &mut Option<Upstream>,
    ) -> Result<Outcome, ForwardError> {
        let balancer = &self.route.http.balancer;
        let mut tried = Vec::new();
        // Only a request that could be sent again survives a pooled
        // connection found closed after the request went out.
        let retryable = head.retryable(framing);
        for attempt in 0..2 {
            let mut upstream = match self.upstream(&mut tried, first, retryable).await {
                Ok(upstream) => upstream,
                Err((status, why)) => {
                    return Ok(Outcome::ProxyError {
                        status,
                        why,
                        close: framing != Framing::None,
                    })
                }
            };
            let index = upstream.endpoint;
            balancer.started(index);
            let sent = Instant::now();
            let result = self.send(client, &mut upstream, head, framing, sent).await;
            match result {
                Ok((outcome, reusable)) => {
                    if reusable {
                        self.route.http.pool.checkin(upstream);
                    }
                    return Ok(outcome);
                }
                Err(Failure::Retry) if attempt == 0 => {
                    tracing::debug!(endpoint = %balancer.addr(index), "stale upstream connection: retrying");
                    balancer.finished(index, None);
                    upstream.mark_failed();
                    tried.push(index);
                }
                Err(Failure::Retry) => {
                    balancer.finished(index, None);
                    upstream.mark_failed();
                    let why = "upstream closed the connection before responding".to_string();
                    return Ok(Outcome::ProxyError {
                        status: 502,
                        why,
                        close: false,
                    });
                }
                Err(Failure::Answer { status, why }) => {
                    balancer.finished(index, None);
                    upstream.mark_failed();
                    return Ok(Outcome::ProxyError {
                        status,
                        why,
                        close: true,
                    });
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

    /// Writes the request and passes the response back. On success, says
    /// whether the upstream connection can serve another request.
    async fn send(
        &self,
        client: &mut HttpIo,
        upstream: &mut Upstream,
        head: &RequestHead,
        framing: Framing,
        sent: Instant,
    ) -> Result<(Outcome, bool), Failure> {
        let mut out = Vec::with_capacity(1024);
        head.encode(&mut out);
        if let Err(err) = upstream.io.write_all(&out).await {
            return Err(if upstream.reused {
                Failure::Retry
            } else {
                answer(502, &format!("writing the request upstream failed: {err}"))
            });
        }
        // With `Expect: 100-continue` the body waits for the upstream's 100,
        // or for the client to send it anyway.
        let mut body_sent = framing == Framing::None;
        if !body_sent && !head.expects_continue() {
            send_body(client, upstream, framing).await?;
            body_sent = true;
        }

        loop {
            let next = if body_sent {
                Some(upstream.io.read_head(parse_response).await)
            } else {
                let response = async { Some(upstream.io.read_head(parse_response).await) };
                let body = async {
                    let _ = client.wait_for_data().await;
                    None
                };
                futures_lite::future::or(response, body).await
            };
            let Some(next) = next else {
                // The client sent its body without waiting for a 100.
                send_body(client, upstream, framing).await?;
                body_sent = true;
                continue;
            };
            let response = match next {
                Ok(Some(response)) => response,
                Ok(None) | Err(ReadHeadError::Io(_))
                    if upstream.reused && head.retryable(framing) =>
                {
                    return Err(Failure::Retry);
                }
                Ok(None) => {
                    return Err(answer(
                        502,
                        "upstream closed the connection before responding",
                    ))
                }
                Err(err) => return Err(answer(502, &format!("bad response from upstream: {err}"))),
            };
            if (100..200).contains(&response.status) && response.status != 101 {
                let mut interim = Vec::new();
                response.encode(false, false, &mut interim);
                client.write_all(&interim).await.map_err(client_write)?;
                if response.status == 100 && !body_sent {
                    send_body(client, upstream, framing).await?;
                    body_sent = true;
                }
                continue;
            }
            self.route
                .http
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
    ) -> Result<(Outcome, bool), Failure> {
        let status = response.status;
        let connect = head.method().eq_ignore_ascii_case("CONNECT");
        let tunnel =
            head.wants_tunnel() && (status == 101 || (connect && (200..300).contains(&status)));
        let framing = response
            .framing(head.method())
            .map_err(|err| answer(502, &format!("bad response from upstream: {err}")))?;
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
            self.tunnel(client, upstream)
                .await
                .map_err(Failure::Fatal)?;
            return Ok((Outcome::Tunneled { status }, false));
        }
        upstream
            .io
            .forward_body(client, rest)
            .await
            .map_err(|err| {
                Failure::Fatal(match err {
                    BodyError::Write(e) => ForwardError::ClientWrite(e),
                    BodyError::Read(e) => ForwardError::UpstreamRead(e),
                    other => ForwardError::UpstreamRead(io::Error::other(other.to_string())),
                })
            })?;
        let reusable = body_sent && response.keep_alive() && framing != Framing::UntilClose;
        Ok((Outcome::Responded { status, keep }, reusable))
    }

    /// Forwards what each side already sent, then splices both ways.
    async fn tunnel(
        &self,
        client: &mut HttpIo,
        upstream: &mut Upstream,
    ) -> Result<(), ForwardError> {
        let early = client.take_unread();
        if !early.is_empty() {
            upstream
                .io
                .write_all(&early)
                .await
                .map_err(ForwardError::UpstreamWrite)?;
        }
        let early = upstream.io.take_unread();
        if !early.is_empty() {
            client
                .write_all(&early)
                .await
                .map_err(ForwardError::ClientWrite)?;
        }
        tunnel(
            self.shard,
            &client.socket,
            &upstream.io.socket,
            &client.counters,
            &upstream.io.counters,
        )
        .await
    }

    /// The first upstream if still unused, a pooled connection, or a new
    /// one; `Err((status, why))` when no endpoint can be had.
    async fn upstream(
        &self,
        tried: &mut Vec<usize>,
        first: &mut Option<Upstream>,
        retryable: bool,
    ) -> Result<Upstream, (u16, String)> {
        if let Some(upstream) = first.take() {
            return Ok(upstream);
        }
        let balancer = &self.route.http.balancer;
        let mut last_error = None;
        while let Some(index) = balancer.pick(tried) {
            if let Some(upstream) = self.route.http.pool.checkout(index, retryable) {
                return Ok(upstream);
            }
            match super::connect(self.shard, self.route, index).await {
                Ok(socket) => {
                    let counters = self.route.dst_counters[index].clone();
                    return Ok(upstream(socket, counters, index));
                }
                Err(why) => {
                    tried.push(index);
                    last_error = Some(why);
                }
            }
        }
        Err(match last_error {
            Some(why) => (502, why),
            None => (503, "no endpoint available".to_string()),
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
    Failure::Fatal(ForwardError::ClientWrite(err))
}

fn answer(status: u16, why: &str) -> Failure {
    Failure::Answer {
        status,
        why: why.to_string(),
    }
}

/// Passes the request body from the client to the upstream.
async fn send_body(
    client: &mut HttpIo,
    upstream: &Upstream,
    framing: Framing,
) -> Result<(), Failure> {
    let result = client.forward_body(&upstream.io, framing).await;
    result.map_err(|err| {
        Failure::Fatal(match err {
            BodyError::Read(e) => ForwardError::ClientRead(e),
            BodyError::Write(e) => ForwardError::UpstreamWrite(e),
            other => ForwardError::ClientRead(io::Error::new(
                io::ErrorKind::InvalidData,
                other.to_string(),
            )),
        })
    })
}
