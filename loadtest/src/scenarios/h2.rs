//! h2: `h2_streams` concurrent request loops multiplexed over one h2c
//! connection (prior knowledge), closed loop, on a current-thread tokio
//! runtime: the request rate and its latency.

use super::latency;
use super::{LoadParams, Measurement};
use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::time::Instant;

pub(super) fn run(params: &LoadParams, target: SocketAddr) -> anyhow::Result<Measurement> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let streams = params.h2_streams.max(1);
    let start = Instant::now();
    let deadline = start + params.duration;
    let results = runtime.block_on(async move {
        let socket = tokio::net::TcpStream::connect(target).await?;
        socket.set_nodelay(true)?;
        let (client, connection) = h2::client::handshake(socket)
            .await
            .context("h2 handshake")?;
        let driver = tokio::spawn(connection);
        let loops: Vec<_> = (0..streams)
            .map(|_| tokio::spawn(request_loop(client.clone(), target, deadline)))
            .collect();
        let mut results = Vec::new();
        for handle in loops {
            results.push(handle.await??);
        }
        driver.abort();
        anyhow::Ok(results)
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Measurement::requests(
        results,
        elapsed,
        ("streams", streams as f64),
    ))
}

async fn request_loop(
    client: h2::client::SendRequest<bytes::Bytes>,
    target: SocketAddr,
    deadline: Instant,
) -> anyhow::Result<(hdrhistogram::Histogram<u64>, u64)> {
    let mut histogram = latency::new_histogram();
    let mut count = 0;
    let uri = format!("http://{target}/");
    while Instant::now() < deadline {
        let sent = Instant::now();
        let mut ready = client.clone().ready().await?;
        let request = http::Request::get(uri.as_str()).body(())?;
        let (response, _) = ready.send_request(request, true)?;
        let response = response.await?;
        if response.status() != 200 {
            bail!("origin answered {}", response.status());
        }
        let mut body = response.into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        latency::record(&mut histogram, sent.elapsed());
        count += 1;
    }
    Ok((histogram, count))
}
