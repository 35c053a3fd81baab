//! An h2c origin for the tests, on a current-thread tokio runtime of its
//! own. It echoes each request body; a request with `content-type:
//! application/grpc` gets a gRPC-shaped answer: the body back in
//! `x-messages` data frames, then trailers with the `grpc-status` the
//! request asked for in `x-grpc-status` (default 0). `GET /reset` is
//! answered with a stream reset; `GET /stall` is never answered: the
//! origin waits for the stream's reset (and counts it). The headers and
//! trailers of every request read to its end are kept (`seen`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use bytes::Bytes;
use http::{HeaderMap, Request, Response};

use crate::support::clients::h2::runtime;

pub struct H2Origin {
    pub addr: SocketAddr,
    /// Request streams that reached the origin.
    requests: Counter,
    /// Request streams that ended in a reset instead of their end.
    resets_seen: Counter,
    /// Request streams whose first body bytes arrived.
    bodies_started: Counter,
    seen: Seen,
}

/// The headers and trailers of each request read to its end.
type Seen = Arc<Mutex<Vec<(HeaderMap, Option<HeaderMap>)>>>;

impl H2Origin {
    pub fn start() -> H2Origin {
        H2Origin::start_on("127.0.0.1:0")
    }

    pub fn start_on(bind: &str) -> H2Origin {
        let listener = std::net::TcpListener::bind(bind).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Counter::default();
        let resets_seen = Counter::default();
        let bodies_started = Counter::default();
        let seen = Seen::default();
        let counters = Counters {
            requests: requests.clone(),
            resets: resets_seen.clone(),
            bodies_started: bodies_started.clone(),
            seen: seen.clone(),
        };
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
            requests,
            resets_seen,
            bodies_started,
            seen,
        }
    }

    /// The headers and trailers of each request read to its end so far.
    pub fn seen(&self) -> Vec<(HeaderMap, Option<HeaderMap>)> {
        self.seen.lock().unwrap().clone()
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn resets_seen(&self) -> usize {
        self.resets_seen.load(Ordering::SeqCst)
    }

    pub fn bodies_started(&self) -> usize {
        self.bodies_started.load(Ordering::SeqCst)
    }
}

type Counter = Arc<AtomicUsize>;

#[derive(Clone)]
struct Counters {
    requests: Counter,
    resets: Counter,
    bodies_started: Counter,
    seen: Seen,
}

async fn serve(socket: tokio::net::TcpStream, counters: Counters) {
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
    counters: Counters,
) {
    let Counters {
        requests,
        resets,
        bodies_started,
        seen,
    } = counters;
    requests.fetch_add(1, Ordering::SeqCst);
    match request.uri().path() {
        "/reset" => {
            respond.send_reset(h2::Reason::INTERNAL_ERROR);
            return;
        }
        "/stall" => {
            if std::future::poll_fn(|cx| respond.poll_reset(cx))
                .await
                .is_ok()
            {
                resets.fetch_add(1, Ordering::SeqCst);
            }
            return;
        }
        _ => {}
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
    let headers = request.headers().clone();
    let mut body = request.into_body();
    let mut received = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(err) => {
                if err.is_reset() {
                    resets.fetch_add(1, Ordering::SeqCst);
                }
                return;
            }
        };
        let _ = body.flow_control().release_capacity(chunk.len());
        if received.is_empty() {
            bodies_started.fetch_add(1, Ordering::SeqCst);
        }
        received.extend_from_slice(&chunk);
    }
    let Ok(trailers) = body.trailers().await else {
        return;
    };
    seen.lock().unwrap().push((headers, trailers));
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
