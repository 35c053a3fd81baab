use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use linkerd2_proxy_api::identity::identity_client::IdentityClient;
use linkerd2_proxy_api::identity::identity_server::{Identity, IdentityServer};
use linkerd2_proxy_api::identity::{CertifyRequest, CertifyResponse};

use super::{balanced, endpoints};
use crate::control::resolve;

/// An identity service that takes every request and never answers.
struct Hanging(Arc<AtomicUsize>);

#[tonic::async_trait]
impl Identity for Hanging {
    async fn certify(
        &self,
        _: tonic::Request<CertifyRequest>,
    ) -> Result<tonic::Response<CertifyResponse>, tonic::Status> {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }
}

/// A hanging service on a port of its own, and its count of requests.
async fn hanging() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let taken = Arc::new(AtomicUsize::new(0));
    let server = tonic::transport::Server::builder()
        .add_service(IdentityServer::new(Hanging(taken.clone())))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    tokio::spawn(server);
    (addr, taken)
}

#[test]
fn requests_in_flight_go_to_the_less_loaded_address() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (a, taken_a) = hanging().await;
        let (b, taken_b) = hanging().await;
        let endpoint = endpoints("identity.linkerd.test:8080".into(), None);
        let channel = balanced(resolve::fixed(&[a, b], endpoint));
        // p2c over two endpoints compares both each time: with none
        // answered, each new request goes to the one with fewer waiting.
        for _ in 0..4 {
            let mut client = IdentityClient::new(channel.clone());
            tokio::spawn(async move { client.certify(CertifyRequest::default()).await });
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let taken = || taken_a.load(Ordering::SeqCst) + taken_b.load(Ordering::SeqCst);
        while taken() < 4 {
            assert!(
                Instant::now() < deadline,
                "timed out: {} requests arrived",
                taken()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let spread = (
            taken_a.load(Ordering::SeqCst),
            taken_b.load(Ordering::SeqCst),
        );
        assert_eq!(spread, (2, 2));
    });
}
