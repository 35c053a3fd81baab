//! Load balancing over a route's endpoints by power of two choices: draw
//! two endpoints at random and use the cheaper (`two_choices`). Endpoints
//! whose connects fail sit out with a doubling backoff (`health`). The two
//! balancers share both and differ only in what "cheaper" means:
//!
//! - `ConnectionBalancer` (`connection`), for opaque TCP: open connections
//!   times an average of connect latency, the only costs a byte pipe shows.
//! - `RequestBalancer` (`request`), for HTTP: requests in flight times a
//!   peak EWMA of response latency, as Linkerd balances.
//!
//! Each shard has its own balancers per route. Shards do not share what they
//! learn: that costs a little accuracy and saves every cross-core write. The
//! balancers do no I/O and import nothing of ours: callers report what
//! happened (connected, failed, finished) and ask for the next pick.

mod connection;
mod health;
mod request;
mod two_choices;

pub use connection::ConnectionBalancer;
pub use request::RequestBalancer;
