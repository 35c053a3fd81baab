//! Where the discovery cache runs: `start_on` Linkerd mode's control
//! thread, beside the identity client, over its channels (plaintext on
//! loopback, mTLS otherwise); or, for the tests that drive the cache
//! alone, `spawn` on a thread of its own with a plaintext channel to a
//! control plane on loopback.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use super::cache::{Cache, CacheHandle};
use super::resolver::Clients;
use super::watch::Backoff;
use super::DiscoveryConfig;
use crate::config::LinkerdConfig;
use crate::control::{Channel, ControlPlane};

/// Starts the discovery thread for the control plane at `control` (the
/// destination and policy services both); it ends when every handle is
/// dropped.
pub fn spawn(
    control: SocketAddr,
    config: DiscoveryConfig,
    backoff: Backoff,
) -> io::Result<CacheHandle> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The channel connects on first use, so the thread starts whether or
    // not the control plane is up yet.
    let channel = runtime.block_on(async { Channel::plaintext(control) });
    let clients = Clients {
        destination: channel.clone(),
        policy: channel,
        config: Arc::new(config),
        backoff,
    };
    let (cache, handle, lookups) = Cache::new(clients);
    std::thread::Builder::new()
        .name("ringside-discovery".into())
        .spawn(move || runtime.block_on(cache.run(lookups)))?;
    Ok(handle)
}

/// Starts discovery on Linkerd mode's control thread, against the
/// destination and policy services `linkerd` names (a channel to each,
/// plaintext on loopback, else mTLS naming the service); it stops with
/// the control thread.
pub fn start_on(plane: &ControlPlane, linkerd: &LinkerdConfig) -> CacheHandle {
    let config = DiscoveryConfig {
        context: linkerd.destination.context.clone(),
        profile_networks: linkerd.destination.profile_networks.clone(),
        workload: linkerd.policy.workload.clone(),
    };
    let clients = Clients {
        destination: plane.channel(&linkerd.destination.svc),
        policy: plane.channel(&linkerd.policy.svc),
        config: Arc::new(config),
        backoff: Backoff::default(),
    };
    let (cache, handle, lookups) = Cache::new(clients);
    plane.thread.spawn(cache.run(lookups));
    handle
}
