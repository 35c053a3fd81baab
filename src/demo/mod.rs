//! `ringside demo`: what a sidecar is for, in one command on a fresh
//! machine. Two ringside proxies meshed over mTLS, with development
//! identities minted on the spot (`identities`): proxy A beside a client
//! workload, proxy B beside two origins, one fast and one slow
//! (`origins`), set up as README's "Mesh" section sets them up (`mesh`,
//! each proxy a `proxy`). HTTP/1, HTTP/2, gRPC and opaque traffic goes
//! client → A's outbound route → mTLS with Linkerd's transport header →
//! B's inbound listener → an origin, every byte checked (`traffic`); then
//! the report: the balancer's split and both proxies' `ringside stat`
//! tables (`report`). Both keep running, with commands to try printed;
//! Ctrl-C drains both and exits 0. A mismatch or a failed request drains
//! them too (`admin`), and exits 1.
//!
//! The proxies are two child processes (the `ringside` binary), not two
//! `Sidecar`s in this process. Two sidecars can share a process (own
//! shards, admin servers, listeners and signal handlers, each draining on
//! one SIGINT), but not its end: a shard that has drained leaves its
//! pooled upstream connections to the exit of the process, so in one
//! process A's mTLS connections outlived A, and B waited its whole
//! `shutdown_grace` (30 s) for them after every Ctrl-C. As processes, each
//! proxy ends as a user's does, and shows its own `process_*` series. What
//! children cost is handled in `proxy`: their own process group (Ctrl-C
//! reaches the demo, which passes it on once: a ringside signalled twice
//! exits 1 at once), a death signal if the demo is killed, and their
//! `listening` lines read for the ports.

mod admin;
mod identities;
mod mesh;
mod origins;
mod proxy;
mod report;
mod traffic;
mod wire;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use anyhow::Context;
use ringside::config::DemoArgs;
use signal_hook::consts::{SIGINT, SIGTERM};

use identities::Identities;
use mesh::{Mesh, Ports};
use report::Proxy;

/// How long the demo waits for its traffic thread once both proxies have
/// exited: their exit ends the clients' connections, so it ends within
/// this, with the error that says so.
const TRAFFIC_AFTER_EXIT: Duration = Duration::from_secs(5);

/// `config_file`: the `--config` the demo was given, for both proxies.
pub fn run(config_file: Option<&Path>, args: &DemoArgs) -> anyhow::Result<()> {
    let identities = Identities::mint()?;
    println!(
        "demo: identities minted into {} (removed at exit): {} and {}",
        identities.dir().display(),
        identities::WEB,
        identities::API
    );
    let origins = origins::start()?;
    let [fast, slow] = &origins;
    println!(
        "demo: origins: fast {}, slow {} (+{:?} per HTTP answer)",
        fast.addr,
        slow.addr,
        origins::SLOW_ORIGIN_DELAY
    );
    let ports = match args.ephemeral_ports {
        true => Ports::EPHEMERAL,
        false => Ports::WELL_KNOWN,
    };
    let Mesh { mut a, mut b } = Mesh::start(config_file, &identities, &origins, ports)?;
    println!(
        "demo: proxy B (api's sidecar), pid {}: inbound {}, admin {}\n  {}",
        b.pid(),
        b.listen,
        b.admin,
        b.command_line
    );
    println!(
        "demo: proxy A (web's sidecar), pid {}: outbound {}, admin {}\n  {}",
        a.pid(),
        a.listen,
        a.admin,
        a.command_line
    );
    let reaped = Arc::new(AtomicBool::new(false));
    forward_signals([a.pid(), b.pid()], reaped.clone())?;

    let proxies = [
        Proxy {
            name: "proxy A (outbound)",
            admin: a.admin,
            direction: "outbound",
        },
        Proxy {
            name: "proxy B (inbound)",
            admin: b.admin,
            direction: "inbound",
        },
    ];
    let (done, traffic_result) = mpsc::channel();
    let outbound = a.listen;
    thread::Builder::new()
        .name("demo-traffic".into())
        .spawn(move || {
            let result = traffic_and_report(outbound, &origins, &proxies);
            if let Err(err) = &result {
                println!("demo: FAILED: {err:#}");
                println!("demo: draining both proxies");
                proxies
                    .iter()
                    .for_each(|proxy| admin::shutdown(proxy.admin));
            }
            let _ = done.send(result);
        })
        .context("starting the traffic thread")?;

    let a_status = a.wait()?;
    if !a_status.success() {
        proxy::signal(b.pid(), SIGINT);
    }
    let b_status = b.wait()?;
    reaped.store(true, Ordering::SeqCst);
    let traffic = traffic_result.recv_timeout(TRAFFIC_AFTER_EXIT);
    anyhow::ensure!(a_status.success(), "proxy A exited: {a_status}");
    anyhow::ensure!(b_status.success(), "proxy B exited: {b_status}");
    match traffic {
        Ok(result) => result?,
        Err(_) => anyhow::bail!("stopped before the traffic was done"),
    }
    println!("demo: both proxies drained and exited 0");
    drop(identities);
    Ok(())
}

/// Passes SIGINT and SIGTERM on to both proxies, which drain on the first
/// and exit at once on the second, as a single ringside does; the demo
/// itself waits for them.
fn forward_signals(pids: [u32; 2], reaped: Arc<AtomicBool>) -> anyhow::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("installing the signal handlers")?;
    thread::Builder::new()
        .name("demo-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                // A reaped proxy's pid may be another process's by now.
                if reaped.load(Ordering::SeqCst) {
                    return;
                }
                pids.iter().for_each(|pid| proxy::signal(*pid, signal));
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// The traffic, then the report and the commands to try.
fn traffic_and_report(
    outbound: std::net::SocketAddr,
    origins: &[origins::Origin],
    proxies: &[Proxy],
) -> anyhow::Result<()> {
    let before = report::before(proxies)?;
    let traffic = traffic::run(outbound)?;
    report::traffic_done(&traffic);
    report::balancing(origins, &traffic);
    report::tables(proxies, &before, &traffic)?;
    report::try_next(outbound, proxies);
    Ok(())
}
