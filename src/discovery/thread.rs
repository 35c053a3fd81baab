//! Where the discovery cache runs: `start_on` Linkerd mode's control
//! thread, beside the identity client, over its channels (plaintext on
//! loopback, mTLS otherwise); or, for a ringside configured by its file
//! (`from_env`, `RINGSIDE_DISCOVERY_ADDR`) and the tests, `spawn` on a
//! thread of its own with a plaintext channel to a control plane on
//! loopback.

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

/// The stand-in's settings, read from the environment until Linkerd mode
/// reads Linkerd's own: `RINGSIDE_DISCOVERY_ADDR` (a control plane on
/// loopback; unset: no discovery), `RINGSIDE_DISCOVERY_PROFILE_NETWORKS`
/// (`NET/PREFIX,...`), `RINGSIDE_DISCOVERY_CONTEXT` and
/// `RINGSIDE_DISCOVERY_WORKLOAD` (passed as-is).
pub fn from_env() -> io::Result<Option<CacheHandle>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(addr) = var("RINGSIDE_DISCOVERY_ADDR") else {
        return Ok(None);
    };
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    let control: SocketAddr = addr
        .parse()
        .map_err(|_| invalid(format!("RINGSIDE_DISCOVERY_ADDR: {addr:?} is not IP:PORT")))?;
    if !control.ip().is_loopback() {
        let why =
            "RINGSIDE_DISCOVERY_ADDR: only a control plane on loopback (plaintext) is supported";
        return Err(invalid(why.to_string()));
    }
    let networks = var("RINGSIDE_DISCOVERY_PROFILE_NETWORKS").unwrap_or_default();
    let profile_networks = networks
        .split(',')
        .filter(|net| !net.trim().is_empty())
        .map(|net| {
            let bad = || invalid(format!("RINGSIDE_DISCOVERY_PROFILE_NETWORKS: {net:?}"));
            let (addr, prefix) = net.trim().split_once('/').ok_or_else(bad)?;
            let addr = addr.parse().map_err(|_| bad())?;
            let prefix = prefix.parse().map_err(|_| bad())?;
            Ok(crate::config::Cidr { addr, prefix })
        })
        .collect::<io::Result<Vec<_>>>()?;
    let config = DiscoveryConfig {
        context: var("RINGSIDE_DISCOVERY_CONTEXT").unwrap_or_default(),
        profile_networks,
        workload: var("RINGSIDE_DISCOVERY_WORKLOAD").unwrap_or_default(),
    };
    tracing::info!(%control, "outbound discovery from the control plane");
    spawn(control, config, Backoff::default()).map(Some)
}
