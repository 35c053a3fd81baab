//! The origin-restart fault: one of the restart route's two echo origins is
//! killed (its listener and every connection closed) and started again on
//! the same port, over and over while the load runs. Each outage is
//! recorded as a window for the ledger.

use super::ledger::Window;
use super::payload::Rng;
use crate::origins::{Origin, OriginKind};
use std::net::SocketAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the origin stays down each time.
const DOWNTIME: Duration = Duration::from_millis(300);
/// Up this long (plus up to as much again, at random) between kills: a few
/// restarts in a 20 s soak, a couple of hundred in 10 minutes.
const UPTIME: Duration = Duration::from_secs(2);
/// A port just freed can be refused for a moment; retry the bind this long.
const REBIND_DEADLINE: Duration = Duration::from_secs(5);

pub struct Restarter {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<anyhow::Result<(Vec<Window>, Origin)>>,
}

impl Restarter {
    /// Starts the thread that restarts `origin` (an echo origin).
    pub fn start(mut origin: Origin, clock: Instant, seed: u64) -> anyhow::Result<Self> {
        let addr = origin.addr();
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("soak-restarter".into())
            .spawn(move || {
                let mut rng = Rng::new(seed);
                let mut windows = Vec::new();
                loop {
                    let uptime = UPTIME + UPTIME.mul_f64(rng.below(1000) as f64 / 1000.0);
                    match stopped.recv_timeout(uptime) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return Ok((windows, origin)),
                    }
                    let down = clock.elapsed();
                    drop(origin);
                    std::thread::sleep(DOWNTIME);
                    origin = rebind(addr)?;
                    windows.push(Window {
                        down,
                        up: clock.elapsed(),
                    });
                }
            })?;
        Ok(Self { stop, thread })
    }

    /// Stops restarting and hands back the outages and the origin, up.
    pub fn finish(self) -> anyhow::Result<(Vec<Window>, Origin)> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the restarter panicked"))?
    }
}

fn rebind(addr: SocketAddr) -> anyhow::Result<Origin> {
    let deadline = Instant::now() + REBIND_DEADLINE;
    loop {
        match Origin::start(OriginKind::Echo, addr, 0) {
            Ok(origin) => return Ok(origin),
            Err(error) if Instant::now() >= deadline => {
                anyhow::bail!("restarting the origin on {addr}: {error}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
