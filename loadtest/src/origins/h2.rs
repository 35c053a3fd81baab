//! The HTTP/2 origin: h2c with prior knowledge, every request answered with
//! a fixed body. It runs the `h2` crate on a current-thread tokio runtime in
//! a thread of its own; nothing else in the load test uses tokio's server side.

use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub(crate) fn spawn(
    listen: SocketAddr,
    response_size: usize,
    stopping: Arc<AtomicBool>,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let std_listener = std::net::TcpListener::bind(listen)?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let body = Bytes::from(vec![b'x'; response_size]);
    let thread = std::thread::Builder::new()
        .name(format!("origin-h2-{}", addr.port()))
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(listener) => listener,
                    Err(error) => return eprintln!("h2 origin: {error}"),
                };
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        continue;
                    };
                    // Origin::drop connects once to wake this loop up.
                    if stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    let _ = socket.set_nodelay(true);
                    tokio::spawn(serve(socket, body.clone()));
                }
            });
            // Dropping the runtime here cancels every connection task.
        })?;
    Ok((addr, thread))
}

async fn serve(socket: tokio::net::TcpStream, body: Bytes) {
    let Ok(mut connection) = h2::server::handshake(socket).await else {
        return;
    };
    while let Some(Ok((_request, mut respond))) = connection.accept().await {
        let response = http::Response::builder()
            .status(200)
            .header("content-type", "application/octet-stream")
            .header("content-length", body.len())
            .body(())
            .expect("static response head");
        let Ok(mut stream) = respond.send_response(response, body.is_empty()) else {
            continue;
        };
        if !body.is_empty() {
            let _ = stream.send_data(body.clone(), true);
        }
    }
}
