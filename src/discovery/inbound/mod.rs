//! Inbound policy from Linkerd's policy controller
//! (`InboundServerPolicies.WatchPort`), per inbound port:
//!
//! - `server`: the plain types a shard judges a client and a request by
//!   (`ServerPolicy`), and the judging;
//! - `translate`: the API's `Server` into one, every remote value
//!   bounded, and Linkerd's built-in default policies;
//! - `ports`: the streams, one per port in use, on the control thread,
//!   reconnecting with backoff and keeping their last answer.
//!
//! Shards hold a port's `watch::Receiver` (`shard/ports.rs`) and copy each
//! new answer into their own cell: judging a request takes no lock.

pub(crate) mod ports;
pub(crate) mod server;
pub(crate) mod translate;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

pub use ports::{InboundClients, InboundHandle, PortAnswer, MAX_PORTS};
pub use server::{
    permit, Authentication, Authorization, ClientTls, HttpRoute, InboundProtocol, RequestParts,
    ServerPolicy,
};

use super::Backoff;
use crate::config::{Config, LinkerdConfig};
use crate::control::ControlPlane;

/// Starts the port watches on Linkerd mode's control thread, against the
/// policy service `linkerd` names.
pub fn start_on(plane: &ControlPlane, linkerd: &LinkerdConfig, config: &Config) -> InboundHandle {
    let clients = InboundClients {
        channel: plane.channel(&linkerd.policy.svc),
        workload: linkerd.policy.workload.clone(),
        default: linkerd.policy.inbound_default.clone(),
        cluster_networks: linkerd.cluster_networks.clone(),
        detect_timeout: config.timeouts.detect,
        backoff: Backoff::default(),
    };
    let (ports, handle, lookups) = ports::Ports::new(clients);
    plane.thread.spawn(ports.run(lookups));
    handle
}

/// Starts the port watches on a thread of their own, against a policy
/// service on loopback (plaintext): for tests that drive them alone.
pub fn spawn(
    control: SocketAddr,
    workload: &str,
    default: &str,
    detect_timeout: Duration,
    backoff: Backoff,
) -> io::Result<InboundHandle> {
    let name = "ringside-inbound-policy";
    crate::discovery::thread::on_a_thread_of_its_own(name, control, |channel| {
        let clients = InboundClients {
            channel,
            workload: workload.to_string(),
            default: default.to_string(),
            cluster_networks: Vec::new(),
            detect_timeout,
            backoff,
        };
        let (ports, handle, lookups) = ports::Ports::new(clients);
        (ports.run(lookups), handle)
    })
}
