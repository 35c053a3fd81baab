//! An h2c client for the tests, and the current-thread tokio runtime it
//! (and the h2 origin) run on. Waits inside that runtime must be async: a
//! blocking one would stop the very connection task that moves the bytes.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Request};

use crate::support::{WAIT_LIMIT, WAIT_STEP};

/// A current-thread runtime whose `block_on` can spawn local tasks.
pub fn runtime() -> LocalRuntime {
    LocalRuntime(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    )
}

pub struct LocalRuntime(tokio::runtime::Runtime);

impl LocalRuntime {
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        tokio::task::LocalSet::new().block_on(&self.0, future)
    }
}

/// What a client got back for one request.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
}

/// Sends `request` with `body` on `sender` and collects the answer.
pub async fn call(
    sender: &mut h2::client::SendRequest<Bytes>,
    request: Request<()>,
    body: Vec<u8>,
) -> Result<Answer, h2::Error> {
    call_with_trailers(sender, request, body, None).await
}

/// `call`, the body followed by `trailers` when there are some.
pub async fn call_with_trailers(
    sender: &mut h2::client::SendRequest<Bytes>,
    request: Request<()>,
    body: Vec<u8>,
    trailers: Option<HeaderMap>,
) -> Result<Answer, h2::Error> {
    let mut ready = sender.clone().ready().await?;
    let ends = body.is_empty() && trailers.is_none();
    let (response, mut upload) = ready.send_request(request, ends)?;
    if !body.is_empty() {
        upload.send_data(Bytes::from(body), trailers.is_none())?;
    }
    if let Some(trailers) = trailers {
        upload.send_trailers(trailers)?;
    }
    let response = response.await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut stream = response.into_body();
    let mut received = Vec::new();
    while let Some(chunk) = stream.data().await {
        let chunk = chunk?;
        let _ = stream.flow_control().release_capacity(chunk.len());
        received.extend_from_slice(&chunk);
    }
    let trailers = stream.trailers().await?;
    Ok(Answer {
        status,
        headers,
        body: received,
        trailers,
    })
}

/// An h2c client connection to `addr`, driven on the current runtime.
pub async fn connect(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    connect_watched(addr).await.0
}

/// `connect`, and how the connection ended (a GOAWAY with an error code
/// ends it with that error).
pub async fn connect_watched(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = h2::client::handshake(socket).await.unwrap();
    (sender, tokio::task::spawn_local(connection))
}

/// `eventually` for code inside the runtime: rechecks every `WAIT_STEP`
/// without blocking the runtime's other tasks, and panics naming `what` if
/// `check` is still false after `WAIT_LIMIT`.
pub async fn eventually_async(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(WAIT_STEP).await;
    }
}
