//! A mock of Linkerd's control plane for discovery: `Destination` (`Get`,
//! `GetProfile`) and `OutboundPolicies` (`Watch`), built from the
//! `linkerd2-proxy-api` crate's server traits and served with tonic on
//! 127.0.0.1:0 from a thread of its own.
//!
//! A test sets what it answers while it runs: a policy per original
//! destination (none: NOT_FOUND), a profile per destination (none:
//! NOT_FOUND), and the endpoints of each `Get` path, which every open
//! stream follows as `Add` and `Remove` updates. `break_streams` ends
//! every open stream with UNAVAILABLE, and `set_down` makes new calls fail
//! so, as a controller that restarts does; `calls` counts the calls made,
//! which shows a client reconnected.

pub mod inbound;
pub mod messages;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use linkerd2_proxy_api::destination::destination_server::{Destination, DestinationServer};
use linkerd2_proxy_api::destination::{
    update, AddrSet, DestinationProfile, GetDestination, NoEndpoints, Update, WeightedAddr,
    WeightedAddrSet,
};
use linkerd2_proxy_api::outbound::outbound_policies_server::{
    OutboundPolicies, OutboundPoliciesServer,
};
use linkerd2_proxy_api::outbound::{traffic_spec, OutboundPolicy, TrafficSpec};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

/// Which call `calls` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Call {
    Get,
    GetProfile,
    Watch,
    WatchPort,
    GetPort,
}

#[derive(Default)]
struct State {
    policies: HashMap<SocketAddr, OutboundPolicy>,
    /// The inbound `Server` of each port (`inbound.rs`), or the status
    /// its calls fail with.
    servers: HashMap<u32, Result<linkerd2_proxy_api::inbound::Server, tonic::Code>>,
    profiles: HashMap<String, DestinationProfile>,
    endpoints: HashMap<String, BTreeMap<SocketAddr, WeightedAddr>>,
    /// Bumped by `break_streams`: a stream opened before ends.
    generation: u64,
    down: bool,
    calls: BTreeMap<Call, u64>,
    /// What each call asked: the paths and the workload and context sent.
    requests: Vec<String>,
}

/// The mock's handle: set its answers, break its streams.
#[derive(Clone)]
pub struct MockControlPlane {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    /// Wakes every open stream to look at the state again.
    changed: Arc<watch::Sender<u64>>,
}

impl MockControlPlane {
    /// Serves on 127.0.0.1:0 until the test process ends.
    pub fn start() -> MockControlPlane {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the mock");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (changed, _) = watch::channel(0);
        let mock = MockControlPlane {
            addr,
            state: Arc::default(),
            changed: Arc::new(changed),
        };
        let service = mock.clone();
        std::thread::spawn(move || {
            // The test clients' current-thread runtime.
            super::clients::h2::runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                tonic::transport::Server::builder()
                    .add_service(DestinationServer::new(service.clone()))
                    .add_service(OutboundPoliciesServer::new(service.clone()))
                    .add_service(inbound::server(service))
                    .serve_with_incoming(incoming)
                    .await
                    .expect("the mock control plane serves");
            });
        });
        mock
    }

    fn change(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap());
        self.changed.send_modify(|n| *n += 1);
    }

    /// The policy of `original` from now on; `None`: NOT_FOUND.
    pub fn set_policy(&self, original: SocketAddr, policy: Option<OutboundPolicy>) {
        self.change(|state| {
            match policy {
                Some(policy) => state.policies.insert(original, policy),
                None => state.policies.remove(&original),
            };
        });
    }

    /// The profile of `original`; `None`: NOT_FOUND.
    pub fn set_profile(&self, original: SocketAddr, profile: Option<DestinationProfile>) {
        let path = original.to_string();
        self.change(|state| {
            match profile {
                Some(profile) => state.profiles.insert(path, profile),
                None => state.profiles.remove(&path),
            };
        });
    }

    /// The endpoints of `path` from now on: open streams get the difference.
    pub fn set_endpoints(&self, path: &str, endpoints: Vec<WeightedAddr>) {
        let by_addr = endpoints
            .into_iter()
            .map(|e| (socket_addr(&e), e))
            .collect();
        self.change(|state| {
            state.endpoints.insert(path.to_string(), by_addr);
        });
    }

    /// Ends every open stream with UNAVAILABLE.
    pub fn break_streams(&self) {
        self.change(|state| state.generation += 1);
    }

    /// While down, every call fails with UNAVAILABLE.
    pub fn set_down(&self, down: bool) {
        self.change(|state| state.down = down);
    }

    pub fn calls(&self, call: Call) -> u64 {
        let state = self.state.lock().unwrap();
        state.calls.get(&call).copied().unwrap_or(0)
    }

    /// Every request seen, as `CALL target context-or-workload`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Counts the call; the generation its stream lives in, or why it fails.
    fn enter(&self, call: Call, request: String) -> Result<u64, Status> {
        let mut state = self.state.lock().unwrap();
        *state.calls.entry(call).or_default() += 1;
        state.requests.push(format!("{call:?} {request}"));
        match state.down {
            true => Err(Status::unavailable("the mock is down")),
            false => Ok(state.generation),
        }
    }

    /// A stream that sends what `next` makes of the state each time it
    /// changes (nothing: nothing new), until an error or until the state's
    /// generation moves on.
    fn stream<T: Send + 'static>(
        &self,
        generation: u64,
        mut next: impl FnMut(&State) -> Vec<Result<T, Status>> + Send + 'static,
    ) -> BoxStream<T> {
        let (tx, rx) = mpsc::channel(16);
        let (state, mut changed) = (self.state.clone(), self.changed.subscribe());
        tokio::spawn(async move {
            loop {
                let items = {
                    let state = state.lock().unwrap();
                    if state.generation != generation {
                        vec![Err(Status::unavailable("stream broken"))]
                    } else {
                        next(&state)
                    }
                };
                for item in items {
                    let end = item.is_err();
                    if tx.send(item).await.is_err() || end {
                        return;
                    }
                }
                if changed.changed().await.is_err() {
                    return;
                }
            }
        });
        Box::pin(ReceiverStream::new(rx))
    }
}

fn socket_addr(endpoint: &WeightedAddr) -> SocketAddr {
    endpoint.addr.unwrap().try_into().unwrap()
}

#[tonic::async_trait]
impl Destination for MockControlPlane {
    type GetStream = BoxStream<Update>;
    type GetProfileStream = BoxStream<DestinationProfile>;

    async fn get(
        &self,
        request: Request<GetDestination>,
    ) -> Result<Response<BoxStream<Update>>, Status> {
        let request = request.into_inner();
        let generation = self.enter(
            Call::Get,
            format!("{} {}", request.path, request.context_token),
        )?;
        let mut sent: Option<BTreeMap<SocketAddr, WeightedAddr>> = None;
        let stream = self.stream(generation, move |state| {
            let now = state
                .endpoints
                .get(&request.path)
                .cloned()
                .unwrap_or_default();
            let updates = diff(sent.as_ref(), &now);
            sent = Some(now);
            let updates = updates.into_iter().map(|update| Update {
                update: Some(update),
            });
            updates.map(Ok).collect()
        });
        Ok(Response::new(stream))
    }

    async fn get_profile(
        &self,
        request: Request<GetDestination>,
    ) -> Result<Response<BoxStream<DestinationProfile>>, Status> {
        let request = request.into_inner();
        let generation = self.enter(
            Call::GetProfile,
            format!("{} {}", request.path, request.context_token),
        )?;
        let mut sent = None;
        let stream = self.stream(generation, move |state| {
            let now = state.profiles.get(&request.path).cloned();
            if sent.is_some() && now == sent {
                return vec![];
            }
            sent = now.clone();
            vec![now.ok_or_else(|| Status::not_found("no profile"))]
        });
        Ok(Response::new(stream))
    }
}

/// What a `Get` stream sends next: everything at first (`NoEndpoints` for
/// nothing), then what was removed and what was added or changed.
fn diff(
    sent: Option<&BTreeMap<SocketAddr, WeightedAddr>>,
    now: &BTreeMap<SocketAddr, WeightedAddr>,
) -> Vec<update::Update> {
    let add = |addrs: Vec<WeightedAddr>| {
        let metric_labels = [("service".to_string(), "mock".to_string())].into();
        update::Update::Add(WeightedAddrSet {
            addrs,
            metric_labels,
        })
    };
    let Some(sent) = sent else {
        if now.is_empty() {
            return vec![update::Update::NoEndpoints(NoEndpoints { exists: true })];
        }
        return vec![add(now.values().cloned().collect())];
    };
    let mut updates = Vec::new();
    let removed: Vec<_> = sent
        .keys()
        .filter(|addr| !now.contains_key(addr))
        .map(|addr| (*addr).into())
        .collect();
    if !removed.is_empty() {
        updates.push(update::Update::Remove(AddrSet { addrs: removed }));
    }
    let added: Vec<WeightedAddr> = now
        .iter()
        .filter(|(addr, e)| sent.get(addr) != Some(e))
        .map(|(_, e)| e.clone())
        .collect();
    if !added.is_empty() {
        updates.push(add(added));
    }
    updates
}

#[tonic::async_trait]
impl OutboundPolicies for MockControlPlane {
    type WatchStream = BoxStream<OutboundPolicy>;

    async fn get(&self, _: Request<TrafficSpec>) -> Result<Response<OutboundPolicy>, Status> {
        Err(Status::unimplemented("the proxy watches"))
    }

    async fn watch(
        &self,
        request: Request<TrafficSpec>,
    ) -> Result<Response<BoxStream<OutboundPolicy>>, Status> {
        let spec = request.into_inner();
        let Some(traffic_spec::Target::Addr(addr)) = spec.target else {
            return Err(Status::invalid_argument("not an address"));
        };
        let original: SocketAddr = addr
            .try_into()
            .map_err(|_| Status::invalid_argument("bad address"))?;
        let generation = self.enter(Call::Watch, format!("{original} {}", spec.source_workload))?;
        if !self.state.lock().unwrap().policies.contains_key(&original) {
            return Err(Status::not_found("no policy"));
        }
        let mut sent = None;
        let stream = self.stream(generation, move |state| {
            let now = state.policies.get(&original).cloned();
            if now == sent {
                return vec![];
            }
            sent = now.clone();
            // A policy taken away mid-stream is a policy gone: NOT_FOUND.
            vec![now.ok_or_else(|| Status::not_found("no policy"))]
        });
        Ok(Response::new(stream))
    }
}
