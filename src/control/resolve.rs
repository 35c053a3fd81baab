//! The addresses of one control-plane service, as the balancer discovers
//! them: an IP is one endpoint for good; a name (Linkerd's headless
//! services, `linkerd-dst-headless.linkerd.svc.cluster.local.`) is looked
//! up with ringside's resolver (`[dns]`, as upstream names are) and again
//! when its TTL is due (within `dns.min_ttl`..`dns.max_ttl`), and every
//! address it holds is an endpoint, added and removed as the answer
//! changes. A lookup that fails or comes back empty keeps the endpoints
//! there were: a replica that is really gone fails its connections, which
//! the balancer steers around, while an empty set would stall every call.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::mpsc;
use tower::discover::Change;

use crate::config::{ControlAddr, ControlHost, DnsConfig};
use crate::dns::Lookups;

/// How names are looked up, and when again.
#[derive(Clone)]
pub(super) struct Names {
    pub lookups: Lookups,
    pub config: std::sync::Arc<DnsConfig>,
}

/// The balancer's view of the endpoints, fed by the lookup task.
pub(super) struct Discovered<S> {
    changes: mpsc::UnboundedReceiver<Change<SocketAddr, S>>,
}

impl<S> Stream for Discovered<S> {
    type Item = Result<Change<SocketAddr, S>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.changes.poll_recv(cx).map(|change| change.map(Ok))
    }
}

/// The endpoints of `svc`, each made by `endpoint`; for a name, a task on
/// the current runtime keeps them current until the balancer is dropped.
pub(super) fn spawn<S, E>(svc: &ControlAddr, names: &Names, endpoint: E) -> Discovered<S>
where
    S: Send + 'static,
    E: Fn(SocketAddr) -> S + Send + 'static,
{
    let (changes, receiver) = mpsc::unbounded_channel();
    match &svc.host {
        ControlHost::Ip(ip) => {
            let addr = SocketAddr::new(*ip, svc.port);
            let _ = changes.send(Change::Insert(addr, endpoint(addr)));
        }
        ControlHost::Name(name) => {
            let names = names.clone();
            tokio::spawn(follow(name.clone(), svc.port, names, endpoint, changes));
        }
    }
    Discovered { changes: receiver }
}

/// These addresses for good: a control plane named by its address alone,
/// and the balancer's tests.
pub(super) fn fixed<S>(addrs: &[SocketAddr], endpoint: impl Fn(SocketAddr) -> S) -> Discovered<S> {
    let (changes, receiver) = mpsc::unbounded_channel();
    for addr in addrs {
        let _ = changes.send(Change::Insert(*addr, endpoint(*addr)));
    }
    Discovered { changes: receiver }
}

async fn follow<S, E>(
    name: String,
    port: u16,
    names: Names,
    endpoint: E,
    changes: mpsc::UnboundedSender<Change<SocketAddr, S>>,
) where
    E: Fn(SocketAddr) -> S,
{
    let mut current = BTreeSet::new();
    let mut failing = false;
    while !changes.is_closed() {
        let mut ttl = Duration::ZERO;
        match names.lookups.addresses(&name).await {
            Some((found, _)) if found.is_empty() => {
                tracing::warn!(%name, "control plane name has no address: keeping the last ones");
            }
            Some((found, found_ttl)) => {
                ttl = found_ttl;
                let found: BTreeSet<SocketAddr> = found
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect();
                if found != current {
                    for gone in current.difference(&found) {
                        let _ = changes.send(Change::Remove(*gone));
                    }
                    for new in found.difference(&current) {
                        let _ = changes.send(Change::Insert(*new, endpoint(*new)));
                    }
                    tracing::info!(%name, addresses = ?found, "control plane addresses");
                    current = found;
                }
                failing = false;
            }
            None if !failing => {
                failing = true;
                tracing::warn!(%name, "cannot look up the control plane: keeping the last addresses");
            }
            None => {}
        }
        tokio::time::sleep(names.config.next_lookup_after(ttl)).await;
    }
}
