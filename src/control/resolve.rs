//! The addresses of one control-plane service, as the balancer discovers
//! them: an IP is one endpoint for good; a name (Linkerd's headless
//! services, `linkerd-dst-headless.linkerd.svc.cluster.local.`) is looked
//! up again every `REFRESH` (the cluster DNS's own TTL for a service), and
//! every address it holds is an endpoint, added and removed as the answer
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

use crate::config::{ControlAddr, ControlHost};

/// How often a control-plane name is looked up again.
const REFRESH: Duration = Duration::from_secs(5);

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
pub(super) fn spawn<S, E>(svc: &ControlAddr, endpoint: E) -> Discovered<S>
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
            tokio::spawn(follow(name.clone(), svc.port, endpoint, changes));
        }
    }
    Discovered { changes: receiver }
}

async fn follow<S, E>(
    name: String,
    port: u16,
    endpoint: E,
    changes: mpsc::UnboundedSender<Change<SocketAddr, S>>,
) where
    E: Fn(SocketAddr) -> S,
{
    let mut current = BTreeSet::new();
    let mut failing = false;
    while !changes.is_closed() {
        match tokio::net::lookup_host((name.as_str(), port)).await {
            Ok(found) => {
                let found: BTreeSet<SocketAddr> = found.collect();
                if found.is_empty() {
                    tracing::warn!(%name, "control plane name has no address: keeping the last ones");
                } else if found != current {
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
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(%name, error = %err, "cannot look up the control plane: keeping the last addresses");
            }
            Err(_) => {}
        }
        tokio::time::sleep(REFRESH).await;
    }
}
