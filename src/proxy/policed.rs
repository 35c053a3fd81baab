//! `Policed`: what an inbound connection under Linkerd's policy
//! controller keeps to be judged by (`authorize.rs`), boxed in its `Conn`.

use std::cell::Cell;
use std::net::IpAddr;
use std::rc::Rc;

use crate::shard::PortPolicy;

/// An inbound connection under a policy controller: its port's policy
/// and what it judges the client by. Boxed in the `Conn` (8 bytes there),
/// and only for these.
pub(super) struct Policed {
    pub(super) port: Rc<PortPolicy>,
    pub(super) client_ip: IpAddr,
    /// Whether ringside terminated the client's TLS (as a mesh peer's).
    pub(super) terminated: Cell<bool>,
}
