//! Opaque TCP forwarding: the splice and copy pumps (`pump`, `pipe`), and
//! the life of one connection (`forward`), balanced by `crate::balance`.

mod forward;
mod pipe;
mod pump;
mod socket;

use std::rc::Rc;
use std::time::Duration;

pub use forward::{connect_endpoint, tunnel, ForwardError, RouteState, TcpForward};
pub use pipe::PipePool;
pub use pump::PumpResources;
pub use socket::{Received, Socket};

use crate::config::{DetectConfig, ForwardMode};
use crate::detect::ServerFirstMemory;
use crate::metrics::ShardMetrics;
use crate::runtime::Shutdown;

/// What every connection of one shard shares. Owned by the shard's thread
/// and reached through an `Rc`: nothing in it is `Send`.
pub struct ShardContext {
    pub metrics: ShardMetrics,
    /// Pipes and scratch space of the opaque pumps.
    pub pumps: PumpResources,
    pub forward_mode: ForwardMode,
    pub connect_timeout: Duration,
    pub detect: DetectConfig,
    pub server_first: ServerFirstMemory,
    /// Fires when the shard starts draining: HTTP connections then finish
    /// their current request and close (HTTP/2 with a GOAWAY).
    pub draining: Rc<Shutdown>,
}
