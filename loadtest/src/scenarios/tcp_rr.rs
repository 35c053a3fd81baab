//! tcp-rr: request/response of `size` bytes against an echo origin at a
//! fixed offered rate, open loop. Each connection has its own schedule
//! (`rate / connections` per second); a request's latency is measured from
//! the moment it was *scheduled*, not sent, so a stall is charged to every
//! request it delayed (coordinated-omission correction, as wrk2 does).
//! Timer slack is set to 1 ns so the client's own wake-ups stay punctual.

use super::latency::{self, Percentiles};
use super::{join_all, LoadParams, Measurement};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub(super) fn run(params: &LoadParams, target: SocketAddr) -> anyhow::Result<Measurement> {
    let connections = params.connections.max(1);
    let interval = Duration::from_secs_f64(connections as f64 / params.rate.max(1) as f64);
    let size = params.size.max(1);
    let start = Instant::now() + Duration::from_millis(20);
    let deadline = start + params.duration;
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..connections)
            .map(|index| {
                // Stagger the connections' schedules across one interval.
                let offset = interval.mul_f64(index as f64 / connections as f64);
                scope.spawn(move || connection(target, size, start + offset, interval, deadline))
            })
            .collect();
        join_all(handles)
    })?;
    let requests: u64 = results.iter().map(|(_, count)| count).sum();
    let histogram = latency::merge(results.into_iter().map(|(histogram, _)| histogram));
    let percentiles = Percentiles::of(&histogram);
    let achieved = requests as f64 / params.duration.as_secs_f64();
    Ok(Measurement {
        figure: percentiles.p99,
        work_units: requests as f64 / 1000.0,
        latency: Some(percentiles),
        extra: vec![
            ("offered_rps", params.rate as f64),
            ("achieved_rps", achieved),
        ],
    })
}

fn connection(
    target: SocketAddr,
    size: usize,
    first: Instant,
    interval: Duration,
    deadline: Instant,
) -> anyhow::Result<(hdrhistogram::Histogram<u64>, u64)> {
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's timer slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let mut stream = TcpStream::connect(target)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let request = vec![0x42u8; size];
    let mut response = vec![0u8; size];
    let mut histogram = latency::new_histogram();
    let mut count = 0u64;
    let mut scheduled = first;
    while scheduled < deadline {
        let now = Instant::now();
        if scheduled > now {
            std::thread::sleep(scheduled - now);
        }
        stream.write_all(&request)?;
        stream.read_exact(&mut response)?;
        latency::record(&mut histogram, scheduled.elapsed());
        count += 1;
        scheduled += interval;
    }
    Ok((histogram, count))
}
