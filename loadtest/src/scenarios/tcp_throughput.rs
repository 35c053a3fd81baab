//! tcp-throughput: `streams` connections each writing 128 KiB chunks to a
//! sink for the duration. Bytes are counted where the sink reads them, over
//! a window that opens once every stream is connected, so bytes a proxy
//! holds in buffers are not counted as delivered.

use super::{join_all, LoadParams, Measurement};
use crate::origins::Origin;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

const CHUNK_BYTES: usize = 128 * 1024;

pub(super) fn run(
    params: &LoadParams,
    target: SocketAddr,
    origin: &Origin,
) -> anyhow::Result<Measurement> {
    let streams = params.streams.max(1);
    let stop = AtomicBool::new(false);
    let connected = Barrier::new(streams + 1);
    let chunk = vec![0x5au8; CHUNK_BYTES];
    let (bytes, elapsed) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..streams)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    let stream = TcpStream::connect(target);
                    connected.wait();
                    let mut stream = stream?;
                    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
                    while !stop.load(Ordering::Relaxed) {
                        stream.write_all(&chunk)?;
                    }
                    Ok(())
                })
            })
            .collect();
        connected.wait();
        let start = Instant::now();
        let before = origin.bytes_received();
        std::thread::sleep(params.duration);
        let bytes = origin.bytes_received() - before;
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        join_all(handles).map(|_| (bytes, elapsed))
    })?;
    let gbit_per_second = bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e9;
    Ok(Measurement {
        figure: gbit_per_second,
        work_units: bytes as f64 / 1e9,
        latency: None,
        extra: vec![("streams", streams as f64)],
    })
}
