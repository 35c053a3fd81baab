//! The streaming clients of the control plane, one task per stream:
//! `policy` (`OutboundPolicies.Watch`), `profile` (`GetProfile`) and
//! `endpoints` (`Destination.Get`). Each publishes its latest answer on a
//! `tokio::sync::watch` channel, which holds the last answer while the
//! stream is down: a stream that ends or breaks is opened again after a
//! backoff (100 ms doubling to 10 s, with 10% jitter, as Linkerd's control
//! clients back off), and the backoff starts over once a stream has
//! answered.
//!
//! Status codes are read as linkerd2-proxy's `GrpcRecover`
//! (`outbound/src/policy/api.rs`) reads them: NOT_FOUND and UNIMPLEMENTED
//! mean the controller does not serve this destination, and it is not
//! asked again. INVALID_ARGUMENT and FAILED_PRECONDITION are final too;
//! where Linkerd then fails the destination's connections, ringside takes
//! them as NOT_FOUND and falls back to the original address (availability
//! first, as its detection does). Everything else is retried.

use std::time::Duration;

use linkerd2_proxy_api::destination::destination_client::DestinationClient;
use linkerd2_proxy_api::destination::GetDestination;
use linkerd2_proxy_api::outbound::outbound_policies_client::OutboundPoliciesClient;
use linkerd2_proxy_api::outbound::TrafficSpec;
use tokio::sync::watch;
use tonic::{Code, Status};

use super::endpoints::EndpointTable;
use super::policy;
use super::target::{PolicyAnswer, ProfileAnswer};
use super::translate::printable;
use crate::config::EndpointSet;
use crate::control::Channel;

/// How a broken stream waits before it is opened again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

/// One stream's backoff state: the next wait, doubled each time.
pub(super) struct Waits {
    backoff: Backoff,
    next: Duration,
    /// A xorshift for the jitter: the clients of many proxies must not
    /// reconnect in step after a controller restarts.
    noise: u64,
}

impl Waits {
    pub(super) fn new(backoff: Backoff) -> Waits {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos());
        Waits {
            backoff,
            next: backoff.min,
            noise: u64::from(nanos) | 1,
        }
    }

    fn reset(&mut self) {
        self.next = self.backoff.min;
    }

    pub(super) async fn wait(&mut self) {
        self.noise ^= self.noise << 13;
        self.noise ^= self.noise >> 7;
        self.noise ^= self.noise << 17;
        let jitter = self.next.mul_f64((self.noise % 1_000) as f64 / 10_000.0);
        tokio::time::sleep(self.next + jitter).await;
        self.next = (self.next * 2).min(self.backoff.max);
    }
}

/// Reads an opened stream until it ends, handing each message to `take`
/// (an answer starts the backoff over); the status it ended with.
pub(super) async fn follow<T>(
    opened: Result<tonic::Response<tonic::Streaming<T>>, Status>,
    waits: &mut Waits,
    mut take: impl FnMut(T),
) -> Status {
    let mut stream = match opened {
        Ok(response) => response.into_inner(),
        Err(status) => return status,
    };
    loop {
        match stream.message().await {
            Ok(Some(message)) => {
                waits.reset();
                take(message);
            }
            Ok(None) => return Status::ok("stream ended"),
            Err(status) => return status,
        }
    }
}

/// Whether a status means the stream is not to be opened again.
fn is_final(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::NotFound | Code::Unimplemented | Code::InvalidArgument | Code::FailedPrecondition
    )
}

fn log_retry(what: &str, target: &str, status: &Status) {
    tracing::info!(
        stream = what,
        target = %printable(target),
        code = ?status.code(),
        message = %printable(status.message()),
        "control plane stream broken; reconnecting after a backoff"
    );
}

/// Follows the policy for `spec`, until NOT_FOUND or until its resolver
/// aborts it.
pub async fn policy(
    channel: Channel,
    spec: TrafficSpec,
    out: watch::Sender<PolicyAnswer>,
    backoff: Backoff,
) {
    let mut client = OutboundPoliciesClient::new(channel);
    let mut waits = Waits::new(backoff);
    let target = format!("{:?}", spec.target);
    loop {
        let opened = client.watch(spec.clone()).await;
        let status = follow(opened, &mut waits, |answer| {
            let answer = match policy::policy(answer) {
                Ok(found) => PolicyAnswer::Found(found),
                Err(err) => {
                    // Linkerd answers such a destination's requests with an
                    // error; ringside has no request to answer on opaque
                    // connections, so it falls back.
                    tracing::warn!(target = %printable(&target), error = %err, "unusable policy");
                    PolicyAnswer::NotFound
                }
            };
            out.send_replace(answer);
        })
        .await;
        if is_final(&status) {
            tracing::debug!(target = %printable(&target), code = ?status.code(), "no policy");
            out.send_replace(PolicyAnswer::NotFound);
            return;
        }
        log_retry("policy", &target, &status);
        waits.wait().await;
    }
}

/// Follows the profile of `request.path`, until the controller has none
/// (then `ProfileAnswer::default()` is the answer) or its resolver aborts
/// it.
pub async fn profile(
    channel: Channel,
    request: GetDestination,
    out: watch::Sender<Option<ProfileAnswer>>,
    backoff: Backoff,
) {
    let mut client = DestinationClient::new(channel);
    let mut waits = Waits::new(backoff);
    loop {
        let opened = client.get_profile(request.clone()).await;
        let status = follow(opened, &mut waits, |answer| {
            let (endpoint, opaque) = policy::profile(answer);
            out.send_replace(Some(ProfileAnswer { endpoint, opaque }));
        })
        .await;
        if is_final(&status) {
            out.send_if_modified(|answer| {
                let first = answer.is_none();
                answer.get_or_insert_with(ProfileAnswer::default);
                first
            });
            return;
        }
        log_retry("profile", &request.path, &status);
        waits.wait().await;
    }
}

/// Follows the endpoints of `request.path` until its resolver aborts it;
/// their set is published at the first answer and whenever it changes.
pub async fn endpoints(
    channel: Channel,
    request: GetDestination,
    out: watch::Sender<Option<EndpointSet>>,
    backoff: Backoff,
) {
    let mut client = DestinationClient::new(channel);
    let mut waits = Waits::new(backoff);
    let mut table = EndpointTable::default();
    loop {
        let opened = client.get(request.clone()).await;
        let status = follow(opened, &mut waits, |update| {
            let changed = table.apply(update);
            if changed || out.borrow().is_none() {
                out.send_replace(Some(table.snapshot()));
            }
        })
        .await;
        // Retried whatever the code: a balancer has no fallback, and the
        // set it has is the best there is until the service answers.
        log_retry("endpoints", &request.path, &status);
        table.reconnected();
        waits.wait().await;
    }
}
