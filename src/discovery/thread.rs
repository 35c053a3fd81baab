//! `spawn`: a thread of its own running the discovery cache on a
//! current-thread tokio runtime, with a plaintext channel to a control
//! plane on loopback.
//!
//! A stand-in until Linkerd mode's control thread runs the cache beside
//! the identity client (with the channel it builds: plaintext on loopback,
//! mTLS otherwise); the cache takes any `Channel`, so only this file goes.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tonic::transport::Endpoint;

use super::cache::{Cache, CacheHandle};
use super::resolver::Clients;
use super::watch::Backoff;
use super::DiscoveryConfig;

/// Starts the discovery thread for the control plane at `control` (the
/// destination and policy services both); it ends when every handle is
/// dropped.
pub fn spawn(
    control: SocketAddr,
    config: DiscoveryConfig,
    backoff: Backoff,
) -> io::Result<CacheHandle> {
    let uri = format!("http://{control}");
    let endpoint = Endpoint::from_shared(uri).map_err(io::Error::other)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The channel connects on first use, so the thread starts whether or
    // not the control plane is up yet.
    let channel = runtime.block_on(async { endpoint.connect_lazy() });
    let clients = Clients {
        channel,
        config: Arc::new(config),
        backoff,
    };
    let (cache, handle, lookups) = Cache::new(clients);
    std::thread::Builder::new()
        .name("ringside-discovery".into())
        .spawn(move || runtime.block_on(cache.run(lookups)))?;
    Ok(handle)
}
