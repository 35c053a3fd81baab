//! The I/O layer every stage of a connection stands on, and with
//! `runtime/` the only place that names glommio: the socket type and
//! connect with a timeout (`socket`), listeners (`listener`), the
//! original destination of a redirected connection (`original_dst`),
//! spawning, sleeping and timeouts (`task`), the shard's coarse deadlines
//! that connection timeouts use (`deadline`), the shard's shutdown signal
//! (`shutdown`), the shard's scratch buffer (`scratch`), the tokio-I/O
//! adapter h2 needs (`h2_io`), TLS handshakes and the TLS stream a socket
//! may carry (`tls`), and the error a connection ends with (`error`); for
//! unit tests only, the in-process harness the stages above run on
//! (`testing`). Keeping glommio behind these few types keeps the runtime
//! replaceable.

mod deadline;
mod error;
mod h2_io;
mod listener;
mod original_dst;
mod scratch;
mod shutdown;
mod socket;
mod task;
#[cfg(test)]
pub mod testing;
pub mod tls;

pub use deadline::{Deadline, Deadlines};
pub use error::{ConnError, Side};
pub use h2_io::H2Io;
pub use listener::{accept_error_reason, AcceptFailures, Listener};
pub use original_dst::{original_dst, Destination};
pub use scratch::Scratch;
pub use shutdown::Shutdown;
pub use socket::{connect, refuse, Received, Socket};
pub use task::{sleep, spawn, spawn_queued, timeout, Tasks};
