//! `H2Proxy`: HTTP/2 (gRPC included) from one client connection. Each
//! client stream becomes a stream on a multiplexed upstream connection (one
//! per endpoint and shard), chosen per request by the peak-EWMA balancer.
//! Bodies stream both ways with flow control (capacity is released only as
//! data is forwarded), trailers pass through (gRPC needs them), and a reset
//! on one side resets the other. The `[http2]` limits bound what one client
//! connection may open, send and reset (`h2_streams`).
//!
//! A client connection's streams run inside its own task, polled beside
//! the connection (`Exchanges`), not as a task each: a spawned glommio
//! task cost 6–10% of a shard's CPU under h2 load, and each stream future
//! is polled only when its own waker fires, so a slow stream costs the
//! others nothing. A stream's request body flows beside its response in
//! the same future.

use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt as _;
use h2::{client, server, Reason, RecvStream, SendStream};
use http::{Request, Response};

use super::answer::ProxyError;
use super::h2_body::{
    grpc_status, pass_body, CONNECTION_WINDOW_BYTES, MAX_SEND_BUFFER_BYTES, STREAM_WINDOW_BYTES,
};
use super::h2_streams::{ClientStreams, InFlight};
use super::h2_upstream::{adopt, sender};
use super::{ClientId, HttpRoute, RequestAuthz};
use crate::balance::RequestBalancer;
use crate::discovery::inbound::RequestParts;
use crate::io::{ConnError, H2Io, Socket};
use crate::metrics::{Expiry, RequestLabels, ResponseClass, TcpCounters};
use crate::shard::Shard;

/// How a stream failed before its response head went out.
pub(super) enum StreamFailure {
    /// Answer with the error's status and a `ringside-proxy-error` header.
    Answer(ProxyError),
    /// Reset the client's stream with this reason.
    Reset(Reason),
    /// The client reset the stream before its response head.
    ClientReset,
}

/// What the serve loop gets next from the client's connection. Unpacked
/// as soon as it is returned: boxing the large variant would cost an
/// allocation per stream for nothing.
#[allow(clippy::large_enum_variant)]
enum Next {
    Stream(Request<RecvStream>, server::SendResponse<Bytes>),
    Ended,
    Failed(h2::Error),
    /// The client reset more streams early than `max_premature_resets`.
    TooManyEarlyResets,
    /// The shard started draining.
    Draining,
    /// No stream was in flight for the client idle timeout.
    Idle,
}

/// What became of a stream's request once it left for its upstream.
enum Forwarded<'a> {
    /// Answered already: HTTP/1 a mesh peer carried, which the application
    /// answered over HTTP/1.
    Answered(ResponseClass),
    /// Sent upstream as a stream: its response is to come.
    Sent(Sent<'a>),
}

/// A request sent as a stream on an upstream HTTP/2 connection.
struct Sent<'a> {
    response: client::ResponseFuture,
    /// Counts the request for its endpoint until its response head.
    pending: Pending<'a>,
    sent: Instant,
    /// The request body's two ends, to pass beside the response; `None`
    /// when the head ended the request.
    body: Option<(RecvStream, SendStream<Bytes>)>,
}

/// The key named when a client is cut off for resetting streams early.
const PREMATURE_RESETS_KEY: &str = "http2.max_premature_resets";
/// The key named when h2's own reset limits cut a client off.
const RESET_LIMITS_KEY: &str =
    "http2.max_pending_accept_reset_streams or http2.max_local_error_reset_streams";

pub struct H2Proxy {
    pub shard: Rc<Shard>,
    pub route: Rc<HttpRoute>,
    /// What the requests' `l5d-*` headers get (see `ClientId`).
    pub client_id: ClientId,
    /// How an inbound policy judged this client (`None`: no policy
    /// applies): each stream is counted, and answered 403 if refused.
    pub authz: Option<RequestAuthz>,
}

impl H2Proxy {
    /// Serves the client's streams until its connection ends. `first` is
    /// an upstream connected during detection, to become the first pooled
    /// HTTP/2 connection of its endpoint.
    pub async fn serve(
        self,
        client: Socket,
        prefix: Vec<u8>,
        counters: Rc<TcpCounters>,
        first: Option<(usize, Socket)>,
    ) -> Result<(), ConnError> {
        if let Some((index, socket)) = first {
            if self.client_id.proven().is_some() {
                // A mesh peer's streams may be HTTP/1 it carried
                // (`orig_proto`) to an application that speaks nothing
                // else: the connection waits in the HTTP/1 pool instead.
                let counters = self.route.metrics.dst[index].clone();
                self.route
                    .pool
                    .checkin(super::upstream(socket, counters, index));
            } else {
                // A failed handshake only means the first request connects
                // anew.
                let _ = adopt(&self.shard, &self.route, index, socket).await;
            }
        }
        let io = H2Io::new(client, prefix, counters, self.shard.pumps.scratch.clone());
        let linger = io.linger();
        let limits = self.shard.http2;
        let timeouts = self.shard.timeouts;
        // The client has as long for its preface as an HTTP/1 client has
        // for a head; then, with no stream in flight, as long as an idle
        // HTTP/1 keep-alive connection (`ClientStreams::idle`).
        let deadline = self.shard.deadlines.deadline();
        deadline.arm(timeouts.head_read);
        let handshake = server::Builder::new()
            .initial_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .max_send_buffer_size(MAX_SEND_BUFFER_BYTES)
            .max_concurrent_streams(limits.max_concurrent_streams)
            .max_header_list_size(limits.max_header_list_size)
            .max_pending_accept_reset_streams(limits.max_pending_accept_reset_streams)
            .max_local_error_reset_streams(Some(limits.max_local_error_reset_streams))
            .handshake(io);
        let expired = async {
            deadline.wait().await;
            None
        };
        let Some(handshake) =
            futures_lite::future::or(async { Some(handshake.await) }, expired).await
        else {
            self.expired(Expiry::HeadRead, timeouts.head_read);
            return Ok(());
        };
        let mut connection = handshake.map_err(|err| ConnError::ClientRead(h2_io_error(err)))?;
        let streams = Rc::new(ClientStreams::new(
            limits.max_concurrent_streams as usize,
            limits.max_premature_resets,
            deadline,
            timeouts.client_idle,
        ));
        // Shared by the streams, each of which owns a handle: a stream
        // begun after the route's endpoints changed is balanced by the
        // newest state (`HttpRoute::newer`), as an HTTP/1 keep-alive
        // connection's next request is, while the streams in flight keep
        // the state they picked their endpoint from.
        let mut proxy = Rc::new(self);
        let mut exchanges = FuturesUnordered::new();
        let mut goaway_sent = false;
        loop {
            let accept = poll_fn(|cx| {
                drive(&mut exchanges, cx);
                poll_next(&mut connection, &streams, cx)
            });
            let drained = async {
                if !goaway_sent {
                    proxy.shard.draining.wait().await;
                    return Next::Draining;
                }
                std::future::pending().await
            };
            let idle = async {
                streams.idle().await;
                Next::Idle
            };
            let accepted =
                futures_lite::future::or(accept, futures_lite::future::or(drained, idle));
            let (request, respond) = match accepted.await {
                Next::Draining => {
                    // GOAWAY tells the client to open no new streams; the
                    // ones in flight finish, then the connection ends.
                    connection.graceful_shutdown();
                    goaway_sent = true;
                    continue;
                }
                Next::Idle => {
                    // Nothing in flight to wait for: a GOAWAY that refuses
                    // no stream, then the close (a client that never reads
                    // could hold a graceful one open).
                    proxy.expired(Expiry::ClientIdle, timeouts.client_idle);
                    linger.set();
                    connection.abrupt_shutdown(Reason::NO_ERROR);
                    let _ = poll_fn(|cx| connection.poll_closed(cx)).await;
                    return Ok(());
                }
                Next::Stream(request, respond) => (request, respond),
                Next::Ended => break,
                Next::TooManyEarlyResets => {
                    // Their upstream streams are reset as they drop.
                    exchanges.clear();
                    linger.set();
                    proxy.shard.metrics.http2_calmed("premature_resets");
                    connection.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                    // The GOAWAY goes out as the connection is driven to
                    // its end.
                    let _ = poll_fn(|cx| connection.poll_closed(cx)).await;
                    return Err(ConnError::ClientLimit(PREMATURE_RESETS_KEY));
                }
                // Clients often end an HTTP/2 connection by closing the
                // socket with bytes unread: a reset, but no failure.
                Next::Failed(err) if is_abrupt_close(&err) => return Ok(()),
                Next::Failed(err) if is_calm_goaway(&err) => {
                    linger.set();
                    proxy.shard.metrics.http2_calmed("stream_resets");
                    return Err(ConnError::ClientLimit(RESET_LIMITS_KEY));
                }
                Next::Failed(err) => return Err(ConnError::ClientRead(h2_io_error(err))),
            };
            if let Some(newer) = proxy.route.newer() {
                proxy = Rc::new(proxy.on(newer));
            }
            let (stream, in_flight) = (proxy.clone(), streams.start());
            exchanges.push(async move { stream.stream(request, respond, in_flight).await });
        }
        Ok(())
    }

    /// The same proxy over `route`, for the streams that begin from now.
    fn on(&self, route: Rc<HttpRoute>) -> H2Proxy {
        H2Proxy {
            shard: self.shard.clone(),
            route,
            client_id: self.client_id.clone(),
            authz: self.authz.clone(),
        }
    }

    /// One client stream, from its request head to the end of both its
    /// response and its request body.
    async fn stream(
        &self,
        request: Request<RecvStream>,
        mut respond: server::SendResponse<Bytes>,
        in_flight: InFlight,
    ) {
        let started = Instant::now();
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| request.headers().get(http::header::HOST)?.to_str().ok())
            .unwrap_or_default();
        let authority = self.shard.metrics.authority(authority);
        let labels = self.shard.metrics.request(
            self.route
                .metrics
                .request_labels(authority, self.client_id.proven()),
        );
        let sent = match self.forward(request, &mut respond).await {
            Ok(Forwarded::Sent(sent)) => sent,
            Ok(Forwarded::Answered(class)) => {
                return self.finish(Ok(class), &mut respond, &labels, started, &in_flight);
            }
            Err(failure) => {
                return self.finish(Err(failure), &mut respond, &labels, started, &in_flight);
            }
        };
        let Sent {
            response,
            pending,
            sent,
            body,
        } = sent;
        let responded = async {
            let class = self.respond(response, pending, sent, &mut respond).await;
            self.finish(class, &mut respond, &labels, started, &in_flight);
        };
        // The request body flows while the response is awaited and passed.
        let uploaded = async {
            if let Some((from, to)) = body {
                let _ = pass_body(from, to, &self.client_id).await;
            }
        };
        futures_lite::future::zip(responded, uploaded).await;
    }

    /// Answers a stream that failed before its response head, and counts
    /// its response (or its early reset).
    fn finish(
        &self,
        result: Result<ResponseClass, StreamFailure>,
        respond: &mut server::SendResponse<Bytes>,
        labels: &RequestLabels,
        started: Instant,
        in_flight: &InFlight,
    ) {
        let class = match result {
            Ok(class) => class,
            Err(StreamFailure::Answer(error)) => {
                let status = error.status();
                tracing::debug!(status, %error, "request failed");
                let mut response = Response::builder()
                    .status(status)
                    .header("ringside-proxy-error", error.header_value());
                let grpc = error.grpc_status();
                if let Some((code, message)) = grpc {
                    response = response
                        .header("content-type", "application/grpc")
                        .header("grpc-status", code)
                        .header("grpc-message", message);
                }
                let grpc_status = grpc.map(|(code, _)| code);
                let response = response.body(()).expect("a valid status and header");
                let _ = respond.send_response(response, true);
                ResponseClass {
                    status_code: status,
                    grpc_status,
                }
            }
            Err(StreamFailure::Reset(reason)) => {
                respond.send_reset(reason);
                return;
            }
            Err(StreamFailure::ClientReset) => {
                in_flight.reset_early();
                return;
            }
        };
        self.shard
            .metrics
            .responded(labels, class, started.elapsed());
    }

    /// Authorizes the request and sends it on: to the application as
    /// HTTP/1 if a mesh peer carried it so, else as a stream upstream.
    async fn forward(
        &self,
        request: Request<RecvStream>,
        respond: &mut server::SendResponse<Bytes>,
    ) -> Result<Forwarded<'_>, StreamFailure> {
        if let Some(authz) = &self.authz {
            let headers = request.headers();
            let header = |name: &str| headers.get(name).map(|value| value.as_bytes());
            let parts = RequestParts {
                method: request.method().as_str(),
                path: request.uri().path(),
                query: request.uri().query().unwrap_or_default(),
                header: &header,
            };
            authz
                .judge(&self.shard.metrics, &parts)
                .map_err(StreamFailure::Answer)?;
        }
        if let Some(absolute_form) = self.orig_proto(&request) {
            // Boxed: inline, this path's futures made every stream's future
            // 3,392 bytes, moved into `exchanges` and allocated per stream
            // (2,224 bytes without it).
            let carried = self.carried_http1(request, absolute_form, respond);
            return Box::pin(carried).await.map(Forwarded::Answered);
        }
        let reset = client_reset(respond);
        let sent = futures_lite::future::or(self.send(request), reset).await?;
        Ok(Forwarded::Sent(sent))
    }

    /// HTTP/1 a mesh peer carried: it goes to the application so, and its
    /// response comes back as the stream's.
    async fn carried_http1(
        &self,
        request: Request<RecvStream>,
        absolute_form: bool,
        respond: &mut server::SendResponse<Bytes>,
    ) -> Result<ResponseClass, StreamFailure> {
        let method = request.method().clone();
        let downgraded = self.downgraded(request, absolute_form);
        let reset = client_reset(respond);
        let (upstream, response) = futures_lite::future::or(downgraded, reset).await?;
        self.respond_downgraded(respond, upstream, response, &method)
            .await
    }

    /// Waits for the response head of a request `sent` upstream, then
    /// passes the response to the client.
    async fn respond(
        &self,
        response: client::ResponseFuture,
        mut pending: Pending<'_>,
        sent: Instant,
        respond: &mut server::SendResponse<Bytes>,
    ) -> Result<ResponseClass, StreamFailure> {
        let head = async {
            let response = self.within_response_timeout(response).await;
            let response = response.map_err(StreamFailure::Answer)?;
            response.map_err(|err| match err.reason() {
                Some(reason) if err.is_remote() => StreamFailure::Reset(reason),
                _ => StreamFailure::Answer(ProxyError::H2Upstream(err)),
            })
        };
        let reset = client_reset(respond);
        let response = futures_lite::future::or(head, reset).await?;
        pending.latency = Some(sent.elapsed());
        drop(pending);
        let (parts, body) = response.into_parts();
        let mut class = ResponseClass {
            status_code: parts.status.as_u16(),
            grpc_status: grpc_status(&parts.headers),
        };
        let end_of_response = body.is_end_stream();
        let download = respond
            .send_response(Response::from_parts(parts, ()), end_of_response)
            .map_err(|_| StreamFailure::Reset(Reason::CANCEL))?;
        if !end_of_response {
            let trailers = pass_body(body, download, &ClientId::Untouched).await;
            if let Ok(Some(status)) = trailers {
                class.grpc_status = Some(status);
            }
        }
        Ok(class)
    }

    /// Sends the request's head upstream, on an endpoint the balancer
    /// picks; its body is for the caller to pass.
    async fn send(&self, request: Request<RecvStream>) -> Result<Sent<'_>, StreamFailure> {
        let (index, mut sender) = self.sender().await?;
        let (mut parts, body) = request.into_parts();
        self.client_id.apply(&mut parts.headers);
        let end_of_request = body.is_end_stream();
        let pending = Pending::new(&self.route.balancer, index);
        let sent = Instant::now();
        let (response, upload) = sender
            .send_request(Request::from_parts(parts, ()), end_of_request)
            .map_err(|err| StreamFailure::Answer(ProxyError::H2Send(err)))?;
        Ok(Sent {
            response,
            pending,
            sent,
            body: (!end_of_request).then_some((body, upload)),
        })
    }

    fn expired(&self, expiry: Expiry, after: Duration) {
        let metrics = &self.shard.metrics;
        self.route.metrics.expired(metrics, expiry, after);
    }

    /// `response` within the route's response timeout, on the shard's
    /// coarse clock; a timeout is counted.
    pub(super) async fn within_response_timeout<T>(
        &self,
        response: impl std::future::Future<Output = T>,
    ) -> Result<T, ProxyError> {
        let Some(timeout) = self.route.response_timeout else {
            return Ok(response.await);
        };
        match self.shard.deadlines.timeout(timeout, response).await {
            Some(response) => Ok(response),
            None => {
                self.expired(Expiry::Response, timeout);
                Err(ProxyError::ResponseTimeout(timeout))
            }
        }
    }

    /// A ready sender on an upstream HTTP/2 connection to an endpoint the
    /// balancer picks (another one if it fails).
    async fn sender(&self) -> Result<(usize, client::SendRequest<Bytes>), StreamFailure> {
        let mut tried = Vec::new();
        let mut last_error = None;
        while let Some(index) = self.route.balancer.pick(&tried) {
            match sender(&self.shard, &self.route, index).await {
                Ok(sender) => return Ok((index, sender)),
                Err(error) => last_error = Some(error),
            }
            tried.push(index);
        }
        Err(StreamFailure::Answer(
            last_error.unwrap_or(ProxyError::NoEndpoint),
        ))
    }
}

/// Resolves when the client resets its stream, to race the wait for a
/// response head: the upstream request is then cancelled with it (dropping
/// its handles resets the upstream stream), instead of held in flight with
/// nobody waiting for it.
async fn client_reset<T>(respond: &mut server::SendResponse<Bytes>) -> Result<T, StreamFailure> {
    let _ = poll_fn(|cx| respond.poll_reset(cx)).await;
    Err(StreamFailure::ClientReset)
}

/// Polls the connection's streams in flight that were woken since their
/// last poll (`FuturesUnordered` keeps a waker per stream), until none is
/// ready; each one that ends is dropped, and with it its `InFlight`.
fn drive(exchanges: &mut FuturesUnordered<impl Future<Output = ()>>, cx: &mut Context<'_>) {
    while let Poll::Ready(Some(())) = exchanges.poll_next_unpin(cx) {}
}

/// Lets `serve` poll the connection before a stream future goes on: a
/// reset drops what h2 still queues for its stream (a response head,
/// data), so a stream that ends its response with one lets the connection
/// hand those to the socket first. `serve` polls the connection after the
/// streams (`drive`), and `FuturesUnordered` ends its pass once a future
/// has yielded twice, so the second yield comes back after the
/// connection's poll. (Not if another stream ends within the same pass:
/// `drive` then starts a new one, and the head may still be dropped.)
pub(super) async fn let_the_connection_write() {
    futures_lite::future::yield_now().await;
    futures_lite::future::yield_now().await;
}

/// The serve loop's next step. While `max_concurrent_streams` requests are
/// in flight it takes no new stream but still drives the connection (the
/// streams in flight need its I/O); new streams wait in h2's queue
/// meanwhile.
fn poll_next(
    connection: &mut server::Connection<H2Io, Bytes>,
    streams: &ClientStreams,
    cx: &mut Context<'_>,
) -> Poll<Next> {
    if streams.too_many_early_resets() {
        return Poll::Ready(Next::TooManyEarlyResets);
    }
    streams.wake_on_change(cx);
    if streams.full() {
        return connection.poll_closed(cx).map(|closed| match closed {
            Ok(()) => Next::Ended,
            Err(err) => Next::Failed(err),
        });
    }
    connection.poll_accept(cx).map(|accepted| match accepted {
        Some(Ok((request, respond))) => Next::Stream(request, respond),
        Some(Err(err)) => Next::Failed(err),
        None => Next::Ended,
    })
}

/// A request pending on an upstream endpoint, for its balancer: counted as
/// finished when dropped, with its latency once its response head came,
/// however the wait ended (a client reset drops it half way).
pub(super) struct Pending<'a> {
    balancer: &'a RequestBalancer,
    index: usize,
    pub latency: Option<Duration>,
}

impl<'a> Pending<'a> {
    pub fn new(balancer: &'a RequestBalancer, index: usize) -> Pending<'a> {
        balancer.started(index);
        Pending {
            balancer,
            index,
            latency: None,
        }
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.balancer.finished(self.index, self.latency);
    }
}

fn is_abrupt_close(err: &h2::Error) -> bool {
    err.get_io().is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        )
    })
}

/// h2 cut the client off for its resets (pending-accept or local-error
/// limits) with GOAWAY ENHANCE_YOUR_CALM.
fn is_calm_goaway(err: &h2::Error) -> bool {
    err.is_go_away() && err.is_library() && err.reason() == Some(Reason::ENHANCE_YOUR_CALM)
}

fn h2_io_error(err: h2::Error) -> std::io::Error {
    if err.is_io() {
        err.into_io()
            .unwrap_or_else(|| std::io::Error::other("h2 I/O error"))
    } else {
        std::io::Error::other(err.to_string())
    }
}

#[cfg(test)]
#[path = "h2_tests.rs"]
mod tests;
