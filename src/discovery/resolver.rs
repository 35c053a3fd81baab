//! `resolve`: one original destination's watches, combined into its
//! `Discovered` snapshot, as linkerd2-proxy's `discover.rs` joins
//! `GetProfile` and `OutboundPolicies.Watch` and its balancer follows
//! `Destination.Get`.
//!
//! The policy watch always runs; the profile only for destinations in the
//! profile networks; `Destination.Get` while the policy's backend is a
//! balancer, for its path (restarted when the path changes). Nothing is
//! published until it would be a complete answer: a policy, and for a
//! balancer its first endpoint set; for NOT_FOUND, the profile's answer
//! when one was asked for. A snapshot is published only when it differs
//! from the last one, so shards rebuild nothing for a repeated answer.

use std::net::SocketAddr;
use std::sync::Arc;

use linkerd2_proxy_api::destination::GetDestination;
use linkerd2_proxy_api::outbound::{traffic_spec, TrafficSpec};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

use super::policy::{Backend, Policy};
use super::target::{self, Discovered, PolicyAnswer, ProfileAnswer};
use super::watch::{self as streams, Backoff};
use super::DiscoveryConfig;
use crate::config::EndpointSet;
use crate::control::Channel;

/// What every resolver shares: the channels to the control plane's
/// destination and policy services (one channel for both when they are
/// one server) and the settings of its requests.
#[derive(Clone)]
pub struct Clients {
    pub destination: Channel,
    pub policy: Channel,
    pub config: Arc<DiscoveryConfig>,
    pub backoff: Backoff,
}

/// The snapshot a destination's subscribers see: `None` until the first
/// complete answer.
pub type Snapshot = Option<Arc<Discovered>>;

/// Resolves `original` into `out` until aborted; its streams go with it.
pub async fn resolve(clients: Clients, original: SocketAddr, out: watch::Sender<Snapshot>) {
    let mut tasks = JoinSet::new();
    let (policy_tx, mut policy) = watch::channel(PolicyAnswer::Pending);
    let spec = TrafficSpec {
        source_workload: clients.config.workload.clone(),
        target: Some(traffic_spec::Target::Addr(original.into())),
    };
    let channel = clients.policy.clone();
    tasks.spawn(streams::policy(channel, spec, policy_tx, clients.backoff));
    let profiled = clients.config.profiles(original);
    let (profile_tx, mut profile) = watch::channel(None);
    if profiled {
        let request = get(&clients, original.to_string());
        let channel = clients.destination.clone();
        tasks.spawn(streams::profile(
            channel,
            request,
            profile_tx,
            clients.backoff,
        ));
    }
    let mut balancer: Option<(String, AbortHandle)> = None;
    let (_, mut endpoints) = watch::channel(None);
    let (mut policy_open, mut profile_open, mut endpoints_open) = (true, profiled, false);
    loop {
        let answer = policy.borrow_and_update().clone();
        let path = match &answer {
            PolicyAnswer::Found(Policy {
                backend: Backend::Balance { path },
                ..
            }) => Some(path.clone()),
            _ => None,
        };
        if path.as_ref() != balancer.as_ref().map(|(p, _)| p) {
            if let Some((_, task)) = balancer.take() {
                task.abort();
            }
            let (tx, rx) = watch::channel(None);
            endpoints = rx;
            endpoints_open = path.is_some();
            if let Some(path) = path {
                let request = get(&clients, path.clone());
                let channel = clients.destination.clone();
                let task = tasks.spawn(streams::endpoints(channel, request, tx, clients.backoff));
                balancer = Some((path, task));
            }
        }
        let profile_answer: Option<ProfileAnswer> = profile.borrow_and_update().clone();
        let balanced: Option<EndpointSet> = endpoints.borrow_and_update().clone();
        if let Some(discovered) = complete(original, &answer, profiled, profile_answer, balanced) {
            out.send_if_modified(|current| {
                let changed = current.as_deref() != Some(&discovered);
                if changed {
                    *current = Some(Arc::new(discovered));
                }
                changed
            });
        }
        // A watch whose stream ended for good (NOT_FOUND) keeps its last
        // answer; it is no longer waited on.
        tokio::select! {
            changed = policy.changed(), if policy_open => policy_open = changed.is_ok(),
            changed = profile.changed(), if profile_open => profile_open = changed.is_ok(),
            changed = endpoints.changed(), if endpoints_open => endpoints_open = changed.is_ok(),
            // Nothing more can change: the answer stands.
            () = std::future::pending(), if !(policy_open || profile_open || endpoints_open) => {}
        }
    }
}

/// The snapshot, once the answers in hand make a complete one.
fn complete(
    original: SocketAddr,
    policy: &PolicyAnswer,
    profiled: bool,
    profile: Option<ProfileAnswer>,
    balanced: Option<EndpointSet>,
) -> Option<Discovered> {
    match policy {
        PolicyAnswer::NotFound if profiled && profile.is_none() => None,
        PolicyAnswer::Found(Policy {
            backend: Backend::Balance { .. },
            ..
        }) => target::resolve(original, policy, None, &balanced?),
        _ => target::resolve(original, policy, profile.as_ref(), &EndpointSet::from([])),
    }
}

fn get(clients: &Clients, path: String) -> GetDestination {
    GetDestination {
        scheme: String::new(),
        path,
        context_token: clients.config.context.clone(),
    }
}
