//! An h2c origin and client for the tests, on a current-thread tokio
//! runtime of their own. The origin echoes each request body; a request
//! with `content-type: application/grpc` gets a gRPC-shaped answer: the
//! body back in `x-messages` data frames, then trailers with the
//! `grpc-status` the request asked for in `x-grpc-status` (default 0).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::thread;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};

pub struct H2Origin {
    pub addr: SocketAddr,
    /// Request streams that ended in a reset instead of their end.
    pub resets_seen: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Request streams whose first body bytes arrived.
    pub bodies_started: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl H2Origin {
    pub fn start() -> H2Origin {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let resets_seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let bodies_started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counters = (resets_seen.clone(), bodies_started.clone());
        thread::spawn(move || {
            runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (socket, _) = listener.accept().await.unwrap();
                    tokio::task::spawn_local(serve(socket, counters.clone()));
                }
            })
        });
        H2Origin {
            addr,
            resets_seen,
            bodies_started,
        }
    }
}

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

type Counter = std::sync::Arc<std::sync::atomic::AtomicUsize>;

async fn serve(socket: tokio::net::TcpStream, counters: (Counter, Counter)) {
    let Ok(mut connection) = h2::server::handshake(socket).await else {
        return;
    };
    while let Some(accepted) = connection.accept().await {
        match accepted {
            Ok((request, respond)) => {
                tokio::task::spawn_local(answer(request, respond, counters.clone()));
            }
            Err(err) => {
                eprintln!("h2 origin: connection failed: {err}");
                return;
            }
        }
    }
}

async fn answer(
    request: Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    (resets, bodies_started): (Counter, Counter),
) {
    if request.uri().path() == "/reset" {
        respond.send_reset(h2::Reason::INTERNAL_ERROR);
        return;
    }
    let grpc = request
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/grpc");
    let grpc_status = request
        .headers()
        .get("x-grpc-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_else(|| "0".to_string());
    let messages: usize = request
        .headers()
        .get("x-messages")
        .map(|v| v.to_str().unwrap().parse().unwrap())
        .unwrap_or(1);
    let mut body = request.into_body();
    let mut received = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => {
                if err.is_reset() {
                    resets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                return;
            }
        };
        let _ = body.flow_control().release_capacity(chunk.len());
        if received.is_empty() {
            bodies_started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        received.extend_from_slice(&chunk);
    }
    let response = Response::builder().status(200).body(()).unwrap();
    let Ok(mut send) = respond.send_response(response, false) else {
        return;
    };
    if grpc {
        for _ in 0..messages {
            let _ = send.send_data(Bytes::from(received.clone()), false);
        }
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", grpc_status.parse().unwrap());
        let _ = send.send_trailers(trailers);
    } else {
        let _ = send.send_data(Bytes::from(received), true);
    }
}

/// What a client got back for one request.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
}

/// Sends `request` with `body` on `sender` and collects the answer.
pub async fn call(
    sender: &mut h2::client::SendRequest<Bytes>,
    request: Request<()>,
    body: Vec<u8>,
) -> Result<Answer, h2::Error> {
    let mut ready = sender.clone().ready().await?;
    let (response, mut upload) = ready.send_request(request, body.is_empty())?;
    if !body.is_empty() {
        upload.send_data(Bytes::from(body), true)?;
    }
    let response = response.await?;
    let status = response.status().as_u16();
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
        body: received,
        trailers,
    })
}

/// An h2c client connection to `addr`, driven on the current runtime.
pub async fn connect(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = h2::client::handshake(socket).await.unwrap();
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    sender
}
