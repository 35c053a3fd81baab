//! The inbound authorization decisions, per shard: the policy that
//! decided a connection and the counters its requests add to, under
//! Linkerd's `inbound_{tcp,http}_authz_{allow,deny}_total` labels.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

/// An inbound connection's authorization, for its requests: each is
/// counted in `inbound_http_authz_{allow,deny}_total`, and a refused
/// one is answered 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authz {
    /// The policy's name (`all-authenticated`, ...).
    pub policy: &'static str,
    pub allowed: bool,
}

/// The labels of `inbound_{tcp,http}_authz_{allow,deny}_total`, as Linkerd's:
/// which policy decided, for which client identity (empty when the client
/// showed none) and which target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuthzLabels {
    /// Counted per HTTP request (`inbound_http_authz_*`), else per
    /// connection (`inbound_tcp_authz_*`).
    pub http: bool,
    pub decision: Decision,
    /// `deny`, `all-unauthenticated`, `all-authenticated`, `identities`.
    pub authz: &'static str,
    /// Under Linkerd's policy controller, the decision's `srv_*`,
    /// `route_*` and `authz_*` labels, made once with the policy
    /// (`discovery::inbound`); they replace `authz`.
    pub policy: Option<Arc<str>>,
    pub client_id: String,
    pub target_addr: String,
}

/// What was decided, each counted in a family of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Decision {
    Allowed,
    Denied,
    /// An open connection a new policy no longer authorizes, closed
    /// (`inbound_tcp_authz_terminate_total`).
    Terminated,
    /// An HTTP request no route of its server matches, answered 404
    /// (`inbound_http_route_not_found_total`, labelled by server only).
    RouteNotFound,
}

impl Decision {
    pub fn allowed(allowed: bool) -> Decision {
        match allowed {
            true => Decision::Allowed,
            false => Decision::Denied,
        }
    }
}

/// How an inbound policy judged one HTTP client, with the counter its
/// requests add to: looked up once per connection, so that counting a
/// request is one `Cell` add, no labels built.
#[derive(Debug, Clone)]
pub struct HttpAuthz {
    pub authz: Authz,
    pub(super) requests: Rc<Cell<u64>>,
}

impl HttpAuthz {
    /// Counts one request of the connection.
    pub fn request(&self) {
        self.requests.set(self.requests.get().wrapping_add(1));
    }
}
