//! No proxy: the client talks to the origin itself. The baseline every
//! proxy's figure is divided by.

use super::RunningTarget;
use std::net::SocketAddr;

pub(super) fn start(origin: SocketAddr) -> RunningTarget {
    RunningTarget {
        addr: origin,
        process: None,
    }
}
