//! What the mesh adds to `/metrics`: the identity's certificate expiry and
//! failed reloads (one process-wide value, read by the admin shard; the
//! identity thread writes it a few times a day, so an atomic costs
//! nothing here), and per shard the inbound authorization decisions and
//! the meshed connections refused before they were proxied.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The identity as the rotation thread last loaded it.
#[derive(Debug, Default)]
pub struct IdentityStatus {
    not_after: AtomicU64,
    reload_failures: AtomicU64,
}

/// A reading of `IdentityStatus` for one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdentityReading {
    /// When the certificate in use expires, in Unix seconds.
    pub not_after_unix_seconds: u64,
    pub reload_failures: u64,
}

impl IdentityStatus {
    pub fn loaded(&self, not_after_unix_seconds: u64) {
        self.not_after
            .store(not_after_unix_seconds, Ordering::Relaxed);
    }

    /// A valid certificate has been loaded (not only waited for).
    pub fn is_loaded(&self) -> bool {
        self.not_after.load(Ordering::Relaxed) != 0
    }

    pub fn reload_failed(&self) {
        self.reload_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reading(&self) -> IdentityReading {
        IdentityReading {
            not_after_unix_seconds: self.not_after.load(Ordering::Relaxed),
            reload_failures: self.reload_failures.load(Ordering::Relaxed),
        }
    }
}

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
    pub allowed: bool,
    /// `deny`, `all-unauthenticated`, `all-authenticated`, `identities`.
    pub authz: &'static str,
    pub client_id: String,
    pub target_addr: String,
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
