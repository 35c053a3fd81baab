//! `Conn`: the life of one accepted connection. It connects to an endpoint
//! the connection balancer picks (trying others when one fails), has the
//! connection classified, and dispatches it (`dispatch.rs`). Its end is
//! counted and logged once, with the side that failed.

use std::cell::{Cell, OnceCell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::Instant;

use super::classify::{classify_within, Carry, Classified};
use super::RouteState;
use crate::shard::{Shard, Slot};
use std::net::SocketAddr;

use crate::config::{Direction, Protocol};
use crate::http::{Authz, ClientId};
use crate::io::{ConnError, Socket};
use crate::metrics::HttpAuthz;
use crate::metrics::TcpCounters;

/// How many endpoints one connection tries before it gives up.
const MAX_CONNECT_ATTEMPTS: usize = 3;

/// How a connection ended: the client-side counters it was counted under
/// (they depend on what classify found) and its outcome.
pub(super) type Ended = (Rc<TcpCounters>, Result<(), ConnError>);

/// How [`Conn::unconnected`] left a connection: carried to its end, or an
/// HTTP/1 client for `forward` to serve once `unconnected`'s own state is
/// freed.
enum Unconnected {
    Ended(Ended),
    Http1 { client: Socket, prefix: Vec<u8> },
}

pub(super) fn opened(counters: Rc<TcpCounters>) -> Rc<TcpCounters> {
    counters.opened();
    counters
}

pub struct Conn {
    pub(super) shard: Rc<Shard>,
    pub(super) route: Rc<RouteState>,
    /// The identity the client proved over mTLS: set once its TLS is
    /// terminated, which may be after detection.
    pub(super) proven: RefCell<Option<Rc<str>>>,
    /// The protocol a meshed peer's transport header declared, over the
    /// route's own.
    pub(super) declared: Cell<Option<Protocol>>,
    /// How the inbound policy judged this client, for its HTTP requests'
    /// counters (and a 403 each when refused); `None`: no policy applies.
    pub(super) authz: Cell<Option<Authz>>,
    /// Under Linkerd's policy controller, the port's policy and the client
    /// as it judges it (`authorize.rs`).
    pub(super) policed: OnceCell<Box<super::policed::Policed>>,
    /// The connection's place under the shard's connection limit, given
    /// back when the connection (this task) ends.
    _slot: Slot,
}

impl Conn {
    pub fn new(shard: Rc<Shard>, route: Rc<RouteState>, slot: Slot) -> Conn {
        Conn {
            shard,
            route,
            proven: RefCell::new(None),
            declared: Cell::new(None),
            authz: Cell::new(None),
            policed: OnceCell::new(),
            _slot: slot,
        }
    }

    /// Makes this a connection a meshed peer made: terminated here, from a
    /// client that proved `client_id`, declaring `protocol` when it knew.
    pub(super) fn meshed(&self, client_id: Option<&str>, protocol: Option<Protocol>) {
        if let Some(identity) = client_id {
            *self.proven.borrow_mut() = Some(identity.into());
        }
        self.declared.set(protocol);
    }

    /// What its HTTP requests' `l5d-*` headers get.
    pub(super) fn client_id(&self) -> ClientId {
        match (&*self.proven.borrow(), self.route.route.direction) {
            (Some(identity), _) => ClientId::set(identity.clone()),
            (None, Direction::Inbound) => ClientId::Strip,
            (None, Direction::Outbound) => ClientId::Untouched,
        }
    }

    /// Records how the inbound policy judged this client.
    pub(super) fn judged(&self, authz: Authz) {
        self.authz.set(Some(authz));
    }

    /// How the inbound policy judged this HTTP client, with the counter
    /// of its requests; `None` when no policy applies.
    pub(super) fn http_authz(&self, client_id: &ClientId) -> Option<HttpAuthz> {
        let authz = self.authz.get()?;
        let metrics = &self.shard.metrics;
        Some(metrics.http_authz(&self.route.metrics, authz, client_id.proven()))
    }

    /// The client-side counters: the route's, or for a mesh peer's
    /// connection those labelled with the identity it proved.
    pub(super) fn src_counters(&self) -> Rc<TcpCounters> {
        self.meshed_src(None)
            .unwrap_or_else(|| self.route.metrics.src.clone())
    }

    /// The client-side counters of a mesh peer's connection carrying TLS
    /// for `sni` (or none); `None` for any other connection.
    pub(super) fn meshed_src(&self, sni: Option<&str>) -> Option<Rc<TcpCounters>> {
        let proven = self.proven.borrow();
        let identity = proven.as_deref()?;
        let metrics = &self.shard.metrics;
        Some(self.route.metrics.meshed_src(metrics, identity, sni))
    }

    /// The protocol policy of this connection.
    pub(super) fn protocol(&self) -> Protocol {
        let declared = self.declared.get();
        declared.unwrap_or_else(|| self.policed_protocol().unwrap_or(self.route.route.protocol))
    }

    /// Carries `client` (from `peer`, taken at accept: a reset socket no
    /// longer has a peer address) until both sides are done; counts and
    /// logs its end.
    ///
    /// This is the connection's task, alive as long as the connection, so
    /// what it keeps room for is what every idle connection costs. Not an
    /// `async fn`, which would keep its arguments twice (as passed and as
    /// moved into its body): the `Conn`, the client and its address.
    #[allow(clippy::manual_async_fn)]
    pub fn run(self, client: Socket, peer: Option<SocketAddr>) -> impl Future<Output = ()> {
        async move {
            let started = Instant::now();
            if self.shard.ports.active() {
                // Boxed: inline, its wait for the port's first answer
                // took room in every connection's task (measured: 0.55
                // KiB per idle connection).
                Box::pin(self.police(peer)).await;
            }
            let (src_counters, result) = self.forward(client).await;
            if let Err(err) = &result {
                let client = peer.map_or_else(|| "?".to_string(), |addr| addr.to_string());
                tracing::warn!(
                    shard = self.shard.metrics.shard(),
                    %client,
                    target = %self.route.route.listen,
                    side = %err.side(),
                    error = %err,
                    "connection failed"
                );
            } else {
                tracing::debug!("connection closed");
            }
            src_counters.closed(result.is_ok(), started.elapsed());
        }
    }

    /// Not an `async fn`, for the reason `run` gives.
    #[allow(clippy::manual_async_fn)]
    fn forward(&self, client: Socket) -> impl Future<Output = Ended> + '_ {
        async move {
            let unreachable = 'speculated: {
                if !self.may_speculate() {
                    break 'speculated None;
                }
                // Held while detection runs and, for HTTP/1, until the first
                // head is in (the upstream carries it there).
                let speculating = self.shard.metrics.speculating();
                // Not matched on around the await below: a scrutinee lives
                // to the end of its match, and every connection's task kept
                // room for this one (48 bytes) while serving.
                let (index, upstream) = match Box::pin(self.connect()).await {
                    Ok(connected) => connected,
                    Err(err) => break 'speculated Some(err),
                };
                // Boxed: a connection served without an upstream connected
                // first (`unconnected`: an HTTP client while the pool holds
                // one) must not carry room in its task for the one that had
                // (measured: 240 bytes of each idle HTTP/1 keep-alive
                // connection's task; an opaque one holds them in the box
                // instead).
                let ended = Box::pin(self.dispatch(client, upstream, index, speculating)).await;
                self.route.balancer.disconnected(index);
                return ended;
            };
            // Boxed, like the HTTP paths: an opaque connection's task must
            // not carry the (much larger) state of paths it never takes.
            // An HTTP/1 client is served here, once `unconnected` is done
            // and its box freed: served inside it, every idle keep-alive
            // connection kept that box too (272 bytes).
            let (client, prefix) = match Box::pin(self.unconnected(client, unreachable)).await {
                Unconnected::Ended(ended) => return ended,
                Unconnected::Http1 { client, prefix } => (client, prefix),
            };
            Box::pin(self.serve_http1(client, None, prefix)).await
        }
    }

    /// Carries a connection with no upstream yet: none could be connected
    /// (`unreachable` says why), or it did not speculate (`may_speculate`),
    /// so detection runs first. An HTTP client is served by the HTTP path
    /// (an HTTP/1 one by `forward`, once this is done), which takes a pooled
    /// connection or connects per request (and answers a 502 or 503 saying
    /// why when it cannot); an opaque one connects now, or
    /// sees a reset when nothing could be reached rather than mistake the
    /// refusal for an empty answer.
    ///
    /// Not an `async fn`, for the reason `run` gives (the client and
    /// `unreachable` twice: 160 bytes in every idle HTTP connection).
    #[allow(clippy::manual_async_fn)]
    fn unconnected(
        &self,
        client: Socket,
        unreachable: Option<ConnError>,
    ) -> impl Future<Output = Unconnected> + '_ {
        async move {
            // Boxed, as in `dispatch`: inline, the HTTP/1 path kept room for
            // classify's state while idle between requests.
            let classified = Box::pin(classify_within(
                &self.shard,
                &self.route,
                self.classified_as(&client),
                self.policed_detect_timeout(),
                &client,
                None,
            ))
            .await;
            let refused = |err| Unconnected::Ended((opened(self.src_counters()), Err(err)));
            let Classified { carry, prefix } = match classified {
                Ok(classified) => self.as_configured(classified),
                Err(err) => {
                    client.reset_on_close();
                    return refused(unreachable.unwrap_or(ConnError::ClientRead(err.0)));
                }
            };
            if self.terminates(&carry, &client) {
                // A mesh peer's TLS: what it carries is classified again, with
                // its upstream connected meanwhile now that its identity may
                // have opened the port (`may_connect_early`).
                // Bound before it is matched on, as in `dispatch`.
                let terminated = Box::pin(self.terminate(client, prefix)).await;
                let client = match terminated {
                    Ok(client) => client,
                    Err(err) => return refused(err),
                };
                return match unreachable {
                    None => Unconnected::Ended(Box::pin(self.forward(client)).await),
                    Some(_) => Box::pin(self.unconnected(client, unreachable)).await,
                };
            }
            // A silent client is judged (and counted) once classified again,
            // connected, unless its port requires an identity: then nothing is
            // connected for a client the policy refuses.
            let judged_later = carry == Carry::Silent && self.may_connect_early();
            if !judged_later {
                if let Err(err) = self.admit(&client, &carry) {
                    return refused(err);
                }
            }
            let cause = match carry {
                Carry::Http1 => return Unconnected::Http1 { client, prefix },
                Carry::Http2 => {
                    let served = Box::pin(self.serve_http2(client, None, prefix)).await;
                    return Unconnected::Ended(served);
                }
                Carry::Opaque { tls_sni } => match unreachable {
                    None => {
                        let carried = self.connect_opaque(client, tls_sni, prefix);
                        return Unconnected::Ended(Box::pin(carried).await);
                    }
                    Some(cause) => cause,
                },
                Carry::Silent => match unreachable {
                    None => return Unconnected::Ended(Box::pin(self.connect_silent(client)).await),
                    Some(cause) => cause,
                },
            };
            client.reset_on_close();
            refused(cause)
        }
    }

    /// Whether this connection may connect upstream before its protocol is
    /// known. An opaque route needs its upstream anyway; on the others the
    /// connection is speculative (it saves a server-first protocol the
    /// detect timeout and an HTTP client the connect), and a shard holds at
    /// most `max_speculative` of them, so that N silent or slow clients
    /// cannot pin N of the application's connections.
    ///
    /// Nor does it speculate while the route's HTTP/1 pool holds an idle
    /// connection: an upstream that has just served HTTP/1 keep-alive is an
    /// HTTP server, not one that speaks first, so detection runs first at
    /// no cost, and the HTTP/1 path then checks the pooled connection out
    /// (`H1Proxy::upstream`, `Pool::checkout`) instead of a new one. Without
    /// this, a client that opens a connection per request (`Connection:
    /// close`) cost the application a new connection each time, while the
    /// pool filled up with the ones it already had.
    ///
    /// Any endpoint's idle connection counts, not only the one a request
    /// would go to: the protocol is the route's (its endpoints serve one
    /// service; a transparent route has a single one, its original
    /// destination), and the request balancer picks per request, between
    /// two at random, so its choice is not known before the head is in.
    /// When it picks an endpoint with nothing idle, or what is idle there
    /// turns out expired or closed (`Pool::checkout` looks, this check does
    /// not), the request connects after detection, as over the speculative
    /// limit, and that connection joins the pool. To a mesh peer, the
    /// pooled connection is its mTLS session too, so reuse saves a
    /// handshake as well as the connect. A route holding an HTTP/2
    /// connection (HTTP/2 clients, or HTTP/1 to a mesh peer as streams)
    /// is known to speak HTTP the same way, whatever its protocol setting.
    fn may_speculate(&self) -> bool {
        if !self.may_connect_early() {
            return false;
        }
        if self.route.http.h2_pool.has_any() {
            return false;
        }
        let speculative = !matches!(self.protocol(), Protocol::Opaque | Protocol::Http2);
        if !speculative {
            return true;
        }
        if self.route.http.pool.holds_idle() {
            return false;
        }
        if self.shard.metrics.speculative() < self.shard.max_speculative as u64 {
            return true;
        }
        self.shard.metrics.speculation_skipped();
        false
    }

    /// Connects to an endpoint chosen by the balancer, trying others when
    /// one refuses or times out.
    pub(super) async fn connect(&self) -> Result<(usize, Socket), ConnError> {
        let balancer = &self.route.balancer;
        let attempts = MAX_CONNECT_ATTEMPTS.min(balancer.len());
        let mut tried = Vec::with_capacity(attempts);
        let mut last_error = None;
        while tried.len() < attempts {
            let Some(index) = balancer.pick(&tried) else {
                break;
            };
            tried.push(index);
            let endpoint = &self.route.endpoints[index];
            let addr = endpoint.addr;
            let started = Instant::now();
            match self
                .shard
                .connect(endpoint, self.route.route.direction, None)
                .await
            {
                Ok(stream) => {
                    balancer.connected(index, started.elapsed());
                    return Ok((index, stream));
                }
                Err(err) => {
                    tracing::debug!(endpoint = %addr, error = %err, "upstream connect failed");
                    balancer.failed(index);
                    self.shard.metrics.connect_failed(addr, &err);
                    last_error = Some((addr, err));
                }
            }
        }
        // Nothing tried: the set is empty (a balancer always picks one of
        // its endpoints when none was tried).
        let Some((last, cause)) = last_error else {
            return Err(ConnError::NoEndpoints);
        };
        Err(ConnError::Connect {
            attempts: tried.len(),
            last,
            cause,
        })
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
