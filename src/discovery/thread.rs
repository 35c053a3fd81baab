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
    on_a_thread_of_its_own("ringside-discovery", control, |channel| {
        let clients = Clients {
            destination: channel.clone(),
            policy: channel,
            config: Arc::new(config),
            backoff,
        };
        let (cache, handle, lookups) = Cache::new(clients);
        (cache.run(lookups), handle)
    })
}

/// Runs, on a thread named `name` with a current-thread runtime of its
/// own, the future `start` makes of a plaintext channel to `control`
/// (which connects on first use, so the thread starts whether or not the
/// control plane is up yet); what else `start` made is the caller's.
pub(crate) fn on_a_thread_of_its_own<F, T>(
    name: &str,
    control: SocketAddr,
    start: impl FnOnce(Channel) -> (F, T),
) -> io::Result<T>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let channel = runtime.block_on(async { Channel::plaintext(control) });
    let (run, kept) = start(channel);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || runtime.block_on(run))?;
    Ok(kept)
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
