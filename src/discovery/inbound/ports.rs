//! The control thread's side of inbound policy: one `WatchPort` stream per
//! inbound port in use, as linkerd2-proxy's `inbound/src/policy/store.rs`
//! and `api.rs` keep them.
//!
//! A shard asks for a port when a connection to it arrives; the first ask
//! opens the port's stream, later ones share it. A port's answer starts as
//! the environment's default policy (`LINKERD2_PROXY_INBOUND_DEFAULT_POLICY`)
//! and is `settled` once the service answered or its first call failed:
//! a shard waits (bounded) for that, so that the first connection is
//! judged by the port's real policy when the service is up, and does not
//! wait on one that is down. A broken stream is opened again after a
//! backoff and its last answer kept meanwhile; INVALID_ARGUMENT and
//! FAILED_PRECONDITION (the port is not the pod's, or the workload is
//! unknown) settle the port on the default for good, as Linkerd's
//! `GrpcRecover` does. At most `MAX_PORTS` ports are watched: past it a
//! port gets the default, unwatched.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use linkerd2_proxy_api::inbound::inbound_server_policies_client::InboundServerPoliciesClient;
use linkerd2_proxy_api::inbound::PortSpec;
use tokio::sync::{mpsc, watch};
use tonic::Code;

use super::server::ServerPolicy;
use super::translate::{self, default_policy};
use crate::config::Cidr;
use crate::control::Channel;
use crate::discovery::ask::{asker, Ask, Asker};
use crate::discovery::translate::printable;
use crate::discovery::watch::{follow, Waits};
use crate::discovery::Backoff;

/// Inbound ports watched at once: a pod serves a handful.
pub const MAX_PORTS: usize = 128;

/// A port's current policy.
#[derive(Debug, Clone)]
pub struct PortAnswer {
    pub policy: Arc<ServerPolicy>,
    /// The service answered, or could not be asked: a shard waits no
    /// longer.
    pub settled: bool,
}

/// What the watches need: the policy service, the workload to name, and
/// the default policy's name and networks.
#[derive(Clone)]
pub struct InboundClients {
    pub channel: Channel,
    /// `LINKERD2_PROXY_POLICY_WORKLOAD`, sent as each `PortSpec.workload`.
    pub workload: String,
    /// `LINKERD2_PROXY_INBOUND_DEFAULT_POLICY` (`all-unauthenticated`
    /// when unset).
    pub default: String,
    pub cluster_networks: Vec<Cidr>,
    pub detect_timeout: Duration,
    pub backoff: Backoff,
}

impl InboundClients {
    /// The environment's default policy for `port`.
    pub fn default_for(&self, port: u16) -> Arc<ServerPolicy> {
        let made = default_policy(
            &self.default,
            &self.cluster_networks,
            port,
            self.detect_timeout,
        );
        // The config checked the name; a deny is the safe reading otherwise.
        let made = made.or_else(|| default_policy("deny", &[], port, self.detect_timeout));
        Arc::new(made.expect("deny is a default"))
    }
}

/// How shards ask for an inbound port's answers.
pub type InboundHandle = Asker<u16, PortAnswer>;

/// A shard's question: a port's answers.
pub type PortLookup = Ask<u16, PortAnswer>;

/// The watched ports (runs on the control thread).
pub struct Ports {
    clients: InboundClients,
    watched: HashMap<u16, watch::Sender<PortAnswer>>,
}

impl Ports {
    pub fn new(
        clients: InboundClients,
    ) -> (Ports, InboundHandle, mpsc::UnboundedReceiver<PortLookup>) {
        let (handle, requests) = asker();
        let ports = Ports {
            clients,
            watched: HashMap::new(),
        };
        (ports, handle, requests)
    }

    /// Answers lookups until every handle is gone; the streams go with it.
    pub async fn run(mut self, mut requests: mpsc::UnboundedReceiver<PortLookup>) {
        let mut tasks = tokio::task::JoinSet::new();
        while let Some(lookup) = requests.recv().await {
            let receiver = self.receiver(lookup.key, &mut tasks);
            let _ = lookup.reply.send(receiver);
        }
    }

    fn receiver(
        &mut self,
        port: u16,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> watch::Receiver<PortAnswer> {
        if let Some(sender) = self.watched.get(&port) {
            return sender.subscribe();
        }
        let policy = self.clients.default_for(port);
        if self.watched.len() >= MAX_PORTS {
            tracing::info!(
                port,
                "too many inbound ports watched: the default policy, unwatched"
            );
            return watch::channel(PortAnswer {
                policy,
                settled: true,
            })
            .1;
        }
        let (sender, receiver) = watch::channel(PortAnswer {
            policy,
            settled: false,
        });
        tasks.spawn(watch_port(self.clients.clone(), port, sender.clone()));
        self.watched.insert(port, sender);
        receiver
    }
}

/// Follows `port`'s `Server` into `out` until the service says the port is
/// not one to watch.
async fn watch_port(clients: InboundClients, port: u16, out: watch::Sender<PortAnswer>) {
    let mut client = InboundServerPoliciesClient::new(clients.channel.clone());
    let mut waits = Waits::new(clients.backoff);
    let spec = PortSpec {
        workload: clients.workload.clone(),
        port: port.into(),
    };
    loop {
        let opened = client.watch_port(spec.clone()).await;
        let status = follow(opened, &mut waits, |server| {
            let policy = match translate::server(server, port) {
                Ok(policy) => policy,
                Err(err) => {
                    tracing::warn!(port, error = %err, "unusable inbound policy: refusing everything");
                    translate::invalid_policy(port, clients.detect_timeout)
                }
            };
            tracing::debug!(port, server = %policy.name, "inbound policy");
            out.send_replace(PortAnswer {
                policy: Arc::new(policy),
                settled: true,
            });
        })
        .await;
        if matches!(
            status.code(),
            Code::InvalidArgument | Code::FailedPrecondition
        ) {
            tracing::info!(port, code = ?status.code(), "no inbound policy for this port: the default policy");
            out.send_replace(PortAnswer {
                policy: clients.default_for(port),
                settled: true,
            });
            return;
        }
        // Whatever it held stays; a shard waits no longer for a first one.
        out.send_if_modified(|answer| !std::mem::replace(&mut answer.settled, true));
        tracing::info!(
            port,
            code = ?status.code(),
            message = %printable(status.message()),
            "inbound policy stream broken; reconnecting after a backoff"
        );
        waits.wait().await;
    }
}
