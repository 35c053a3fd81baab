//! The connection stage: everything between an accepted socket and the
//! handler of its protocol. It holds the shard (`crate::shard::Shard`) and
//! lends it to the stages it calls. A connection passes these stages, in
//! this order, each one function in the file named:
//!
//! 1. accept (`accept.rs`, `accept_loop`): a slot under the shard's share
//!    of the connection limit (over it, a reset at once), the route (a
//!    transparent listener's from the original destination, kept per
//!    destination in `transparent.rs`; per route in `route_state.rs`), one task
//!    and one span;
//! 2. connect early (`conn.rs`, `Conn::forward`): the balanced upstream is
//!    connected while detection runs, when `may_speculate` allows;
//! 3. classify (`classify.rs`): the port policy, then detection with its
//!    fail-open and the server-first race: one `Carry` decision;
//! 4. terminate (`meshed.rs`): a mesh peer's mTLS ends here, and what it
//!    carries goes back to 2; a direct connection to the inbound listener
//!    starts here (`meshed::serve`);
//! 5. admit (`authorize.rs`): the inbound policy judges the client, by the
//!    identity it proved or by none; under Linkerd's policy controller, by
//!    its port's policy (`policed.rs`, looked up as `Conn::run` starts),
//!    which also judges each HTTP request and may end an opaque connection
//!    when it changes;
//! 6. carry (`dispatch.rs`): opaque bytes (`tcp`), HTTP/1 (`http::H1Proxy`,
//!    whose upgrades come back as tunnels) or HTTP/2 (`http::H2Proxy`);
//! 7. end (`conn.rs`, `Conn::run`): counted and logged once, with the side
//!    that failed.
//!
//! `Conn::unconnected` (conn.rs) and `Conn::dispatch` (dispatch.rs) run
//! 3 to 6 without and with an early upstream. Each stage's tests run it
//! in-process on loopback sockets (`testing.rs`, tests only).

mod accept;
mod authorize;
mod classify;
mod conn;
mod discovered;
mod dispatch;
mod meshed;
mod policed;
mod route_slot;
mod route_state;
#[cfg(test)]
mod testing;
mod transparent;

pub use accept::{accept_loop, Accepting};
pub use route_slot::{RouteSlot, Routes};
pub use route_state::RouteState;
pub use transparent::TransparentState;
