//! Dispatch: a classified connection is carried as opaque bytes through
//! `tcp`, or served by the HTTP/1 or HTTP/2 proxy. An HTTP/1 connection
//! that upgrades comes back from `http` as a tunnel and is carried here
//! like any opaque connection.
//!
//! A failure on one side is passed on to the other as a reset, so that a
//! reset on one side of the proxy is seen as a reset on the other.

use std::future::Future;
use std::rc::Rc;
use std::time::Instant;

use super::classify::{classify_within, Carry, Classified};
use super::conn::{opened, Conn, Ended};
use crate::http::{self, Arrival, H1Proxy, H2Proxy, HttpIo, Served, Upstream};
use crate::io::{ConnError, Side, Socket};
use crate::metrics::{Expiry, Peer, Speculating, TcpCounters};
use crate::tcp::{tunnel, Closed, End, IdleTimeout};

impl Conn {
    /// Classifies a connection whose upstream is connected, then carries
    /// it. Both happen in this one function, which owns the sockets: each
    /// async level that takes them by value keeps its own room for them in
    /// the connection's task (measured: 440 bytes more per idle connection
    /// with classify one level up). It is not an `async fn` for the same
    /// reason: one keeps its arguments twice, as passed and as moved into
    /// its body (272 bytes of sockets here), where an `async move` block
    /// uses them where they are.
    #[allow(clippy::manual_async_fn)]
    pub(super) fn dispatch(
        &self,
        client: Socket,
        upstream: Socket,
        index: usize,
        speculating: Speculating,
    ) -> impl Future<Output = Ended> + '_ {
        async move {
            // What is only needed until the connection is classified is
            // made and dropped in expressions: a local (even a moved-from
            // or `Copy` one) keeps its room in the task for the life of
            // the connection, however idle.
            let classified = Box::pin(classify_within(
                &self.shard,
                &self.route,
                self.classified_as(&client),
                self.policed_detect_timeout(),
                &client,
                Some((&upstream, self.upstream_connected(index))),
            ))
            .await;
            let Classified { carry, prefix } = match classified {
                Ok(classified) => self.as_configured(classified),
                Err(err) => {
                    upstream.reset_on_close();
                    let counters = opened(self.src_counters());
                    return (counters, Err(ConnError::ClientRead(err.0)));
                }
            };
            if self.terminates(&carry, &client) {
                // A mesh peer's TLS: what it carries is classified again.
                // Bound first, not matched on in place: a scrutinee lives
                // to the end of the match, across the await in its arm,
                // and every connection's task would keep room for it.
                let terminated = Box::pin(self.terminate(client, prefix)).await;
                let client = match terminated {
                    Ok(client) => client,
                    Err(err) => {
                        upstream.reset_on_close();
                        return (opened(self.src_counters()), Err(err));
                    }
                };
                return Box::pin(self.dispatch(client, upstream, index, speculating)).await;
            }
            if let Err(err) = self.admit(&client, &carry) {
                upstream.reset_on_close();
                return (opened(self.src_counters()), Err(err));
            }
            // An upstream connected early to a mesh peer declared no
            // protocol in its transport header (it could not know one yet),
            // and a Linkerd peer forwards such a connection as opaque bytes
            // (`linkerd/app/inbound/src/direct.rs`). So it carries what the
            // client sent as it is: HTTP/1 goes on it as HTTP/1, and never
            // does it become the peer's HTTP/2 connection, which is made
            // declaring HTTP/2 when a request needs it.
            let meshed = self.route.http.metrics.is_meshed(index);
            match carry {
                Carry::Http1 => {
                    let counters = self.route.metrics.dst[index].clone();
                    // Not a `mut` local set afterwards: that one the task
                    // kept room for (232 bytes) while serving.
                    let first = http::upstream(upstream, counters, index).held(speculating);
                    Box::pin(self.serve_http1(client, Some(Box::new(first)), prefix)).await
                }
                Carry::Http2 => {
                    drop(speculating);
                    let first = (!meshed).then_some((index, upstream));
                    Box::pin(self.serve_http2(client, first, prefix)).await
                }
                // A silent client the upstream then timed out: neither
                // carried raw nor taken for a server that speaks first.
                Carry::Silent => {
                    upstream.reset_on_close();
                    client.reset_on_close();
                    let silent = std::io::Error::from(std::io::ErrorKind::TimedOut);
                    (
                        opened(self.src_counters()),
                        Err(ConnError::ClientRead(silent)),
                    )
                }
                Carry::Opaque { tls_sni } => {
                    drop(speculating);
                    let counters = self.opaque_counters(index, tls_sni.as_deref());
                    Box::pin(self.opaque(&client, &upstream, counters, prefix)).await
                }
            }
        }
    }

    /// The address of endpoint `index`, logged once it is connected.
    fn upstream_connected(&self, index: usize) -> std::net::SocketAddr {
        let endpoint = self.route.balancer.endpoint(index).addr;
        tracing::debug!(%endpoint, "upstream connected");
        endpoint
    }

    /// An opaque connection classified before it connected: connects, then
    /// carries it; a client nothing could be connected for sees a reset.
    /// The connect is boxed: inline, its state (glommio's connect among
    /// it: the future was 6 KiB) was kept by every such connection while
    /// idle.
    pub(super) async fn connect_opaque(
        &self,
        client: Socket,
        tls_sni: Option<String>,
        prefix: Vec<u8>,
    ) -> Ended {
        let connected = Box::pin(self.connect()).await;
        match connected {
            Ok((index, upstream)) => {
                let counters = self.opaque_counters(index, tls_sni.as_deref());
                let ended = self.opaque(&client, &upstream, counters, prefix).await;
                self.route.balancer.disconnected(index);
                ended
            }
            Err(err) => {
                client.reset_on_close();
                (opened(self.src_counters()), Err(err))
            }
        }
    }

    /// An inbound client silent past the detect timeout (`Carry::Silent`):
    /// connects, then classifies it again watching the upstream, so that
    /// whichever side speaks first decides, as when it speculated.
    pub(super) async fn connect_silent(&self, client: Socket) -> Ended {
        // Boxed, as in `connect_opaque`: a connect inline is a future of
        // some KiB the connection's task would keep room for all its life.
        let connected = Box::pin(self.connect()).await;
        match connected {
            Ok((index, upstream)) => {
                let speculating = self.shard.metrics.speculating();
                let ended = self.dispatch(client, upstream, index, speculating).await;
                self.route.balancer.disconnected(index);
                ended
            }
            Err(err) => {
                client.reset_on_close();
                (opened(self.src_counters()), Err(err))
            }
        }
    }

    /// Bytes both ways until both directions end; `prefix` (what detection
    /// read out of the client) goes upstream first, and its buffer is given
    /// back before the tunnel idles. Not an `async fn`, which would keep
    /// its arguments twice for as long as the tunnel lasts.
    #[allow(clippy::manual_async_fn)]
    fn opaque<'a>(
        &'a self,
        client: &'a Socket,
        upstream: &'a Socket,
        (src_counters, dst_counters): (Rc<TcpCounters>, Rc<TcpCounters>),
        prefix: Vec<u8>,
    ) -> impl Future<Output = Ended> + 'a {
        async move {
            src_counters.opened();
            dst_counters.opened();
            let started = Instant::now();
            // The prefix's outcome is consumed by `?`, not kept in a local
            // for as long as the tunnel lasts.
            let result = async {
                Self::send_prefix(upstream, prefix, &src_counters, &dst_counters).await?;
                let client_end = End {
                    socket: client,
                    counters: &src_counters,
                };
                let upstream_end = End {
                    socket: upstream,
                    counters: &dst_counters,
                };
                let closed = match self.policed() {
                    false => tunnel(&self.shard.pumps, client_end, upstream_end, self.idle()).await,
                    // Boxed: a connection under no policy controller keeps
                    // no room for the race.
                    true => {
                        let carried =
                            tunnel(&self.shard.pumps, client_end, upstream_end, self.idle());
                        Box::pin(futures_lite::future::or(carried, self.revoked())).await
                    }
                };
                closed.map(|closed| self.closed(closed))
            }
            .await;
            if let Err(err) = &result {
                pass_on(err, client, upstream);
            }
            dst_counters.closed(result.is_ok(), started.elapsed());
            (src_counters, result)
        }
    }

    /// Writes what detection read out of the client to `upstream`, and
    /// frees it.
    async fn send_prefix(
        upstream: &Socket,
        prefix: Vec<u8>,
        src_counters: &TcpCounters,
        dst_counters: &TcpCounters,
    ) -> Result<(), ConnError> {
        if prefix.is_empty() {
            return Ok(());
        }
        src_counters.read(prefix.len());
        let written = upstream.write_all(&prefix).await;
        written.map_err(ConnError::UpstreamWrite)?;
        dst_counters.wrote(prefix.len());
        Ok(())
    }

    /// The opaque idle timeout, when one is set.
    fn idle(&self) -> Option<IdleTimeout<'_>> {
        let shard = &self.shard;
        shard.timeouts.opaque_idle.map(|after| IdleTimeout {
            after,
            deadlines: &shard.deadlines,
        })
    }

    /// Counts a tunnel closed for idleness (both sides are closed as the
    /// sockets drop, with a FIN each: a quiet close, not a failure).
    fn closed(&self, closed: Closed) {
        if closed == Closed::Idle {
            let after = self.shard.timeouts.opaque_idle.unwrap_or_default();
            let metrics = &self.shard.metrics;
            self.route
                .metrics
                .expired(metrics, Expiry::OpaqueIdle, after);
        }
    }

    /// The client- and upstream-side counters of an opaque connection to
    /// endpoint `index`; TLS passed through is counted under its SNI.
    fn opaque_counters(
        &self,
        index: usize,
        tls_sni: Option<&str>,
    ) -> (Rc<TcpCounters>, Rc<TcpCounters>) {
        let route = &self.route.metrics;
        match tls_sni {
            None => (self.src_counters(), route.dst[index].clone()),
            Some(sni) => {
                let metrics = &self.shard.metrics;
                let src = self.meshed_src(Some(sni));
                let src = src.unwrap_or_else(|| route.tls(metrics, Peer::Src, index, sni));
                (src, route.tls(metrics, Peer::Dst, index, sni))
            }
        }
    }

    /// HTTP/1: the connection is served request by request; `first`, the
    /// upstream connected during detection, serves the first request.
    /// Not an `async fn`, which would keep `first` (and the rest) twice
    /// while the connection idles between requests; and what the serving
    /// needs is made before the `async` block, which then holds it once
    /// (made inside, the block kept room for the socket and the prefix it
    /// was made from as well: 56 bytes per idle connection).
    #[allow(clippy::manual_async_fn)]
    pub(super) fn serve_http1(
        &self,
        client: Socket,
        mut first: Option<Box<Upstream>>,
        prefix: Vec<u8>,
    ) -> impl Future<Output = Ended> + '_ {
        let src_counters = opened(self.src_counters());
        src_counters.read(prefix.len());
        let mut client =
            HttpIo::new(client, src_counters.clone(), prefix).expecting(Arrival::Waiting);
        let client_id = self.client_id();
        async move {
            // No arm of this match awaits, and nothing is bound before it:
            // a scrutinee lives to the end of its match, a binding from
            // before an await keeps its room beside the awaited future, and
            // every idle keep-alive connection holds this state (48 bytes
            // less, measured with `-Zprint-type-sizes`).
            let upstream = match (H1Proxy {
                shard: &self.shard,
                route: &self.route.http,
                authz: self.request_authz(&client_id),
                client_id: &client_id,
            })
            .serve(&mut client, &mut first)
            .await
            {
                Ok(Served::Closed) => return (src_counters, Ok(())),
                Ok(Served::Tunnel(upstream)) => upstream,
                Err(err) => {
                    if err.side() == Side::Upstream {
                        // A cut response must not look complete to the client.
                        client.socket.reset_on_close();
                    }
                    return (src_counters, Err(err));
                }
            };
            let result = Box::pin(self.upgraded(&mut client, upstream)).await;
            (src_counters, result)
        }
    }

    /// An upgraded HTTP/1 connection: what each side sent early goes
    /// first, then bytes both ways as for any opaque connection.
    async fn upgraded(
        &self,
        client: &mut HttpIo,
        mut upstream: Box<Upstream>,
    ) -> Result<(), ConnError> {
        let result = async {
            let early = client.take_unread();
            if !early.is_empty() {
                let written = upstream.io.write_all(&early).await;
                written.map_err(ConnError::UpstreamWrite)?;
            }
            let early = upstream.io.take_unread();
            if !early.is_empty() {
                client
                    .write_all(&early)
                    .await
                    .map_err(ConnError::ClientWrite)?;
            }
            let client_end = End {
                socket: &client.socket,
                counters: &client.counters,
            };
            let upstream_end = End {
                socket: &upstream.io.socket,
                counters: &upstream.io.counters,
            };
            let carried = tunnel(&self.shard.pumps, client_end, upstream_end, self.idle()).await;
            carried.map(|closed| self.closed(closed))
        }
        .await;
        if let Err(err) = &result {
            pass_on(err, &client.socket, &upstream.io.socket);
            upstream.mark_failed();
        }
        result
    }

    /// HTTP/2: streams are proxied over pooled upstream connections; `first`,
    /// the upstream connected during detection, becomes one of them.
    pub(super) async fn serve_http2(
        &self,
        client: Socket,
        first: Option<(usize, Socket)>,
        prefix: Vec<u8>,
    ) -> Ended {
        let src_counters = opened(self.src_counters());
        src_counters.read(prefix.len());
        let client_id = self.client_id();
        let proxy = H2Proxy {
            shard: self.shard.clone(),
            route: self.route.http.clone(),
            authz: self.request_authz(&client_id),
            client_id,
        };
        let result = proxy
            .serve(client, prefix, src_counters.clone(), first)
            .await;
        (src_counters, result)
    }
}

/// The side that did not fail sees a reset; a failure of ringside's own
/// resets both.
fn pass_on(err: &ConnError, client: &Socket, upstream: &Socket) {
    match err.side() {
        Side::Client => upstream.reset_on_close(),
        Side::Upstream => client.reset_on_close(),
        Side::Proxy => {
            client.reset_on_close();
            upstream.reset_on_close();
        }
    }
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;
