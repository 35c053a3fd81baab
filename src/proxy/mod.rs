//! The connection stage: everything between an accepted socket and the
//! handler of its protocol.
//!
//! - `accept`: a shard's accept loop, one task and one span per connection;
//! - `limit`: the shard's share of the connection limit (over it, a
//!   connection is reset at once);
//! - `route`: what a shard keeps per route (balancers, pools, counters);
//! - `transparent`: what a shard keeps per transparent listener: a route
//!   state per original destination, bounded and expiring;
//! - `conn`: the life of one connection, from the balanced connect to its
//!   one log line;
//! - `classify`: the route's port policy, then detection with fail-open,
//!   the server-first race and its memory, giving one `Carry` decision;
//! - `dispatch`: carrying the connection as that decision says: opaque
//!   bytes (`tcp`), HTTP/1 (`http::H1Proxy`, whose upgrades come back here
//!   as tunnels) or HTTP/2 (`http::H2Proxy`).
//!
//! Later stages (TLS termination) enter here, between accept and dispatch.

mod accept;
mod classify;
mod conn;
mod dispatch;
mod meshed;
mod route;
mod transparent;

pub use accept::{accept_loop, Accepting};
pub use route::RouteState;
pub use transparent::TransparentState;
