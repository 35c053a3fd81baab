//! `ringside demo`: what a sidecar is for, in one command on a fresh
//! machine. Two ringside proxies meshed over mTLS, with development
//! identities minted on the spot (`identities`): proxy A beside a client
//! workload, proxy B beside two origins, one fast and one slow
//! (`origins`), set up as README's "Mesh" section sets them up (`mesh`).
//! HTTP/1, HTTP/2, gRPC and opaque traffic goes client → A's outbound
//! route → mTLS with Linkerd's transport header → B's inbound listener →
//! an origin, every byte checked (`traffic`); then the report: the
//! balancer's split, both proxies' numbers with the mesh labels (`report`,
//! from their admin servers: `admin`). Then both keep running, with
//! commands to try printed; Ctrl-C drains both and exits 0. A mismatch or
//! a failed request drains them too, and exits 1.
//!
//! Both proxies run in this one process, as two `Sidecar`s, rather than
//! as two child processes of it. Two sidecars share nothing but the
//! process: each has its own shards (glommio executors), admin shard,
//! listeners, identity watcher and metrics; no ringside state is global
//! but the crypto provider, which is immutable. Each installs its own
//! SIGINT/SIGTERM handlers (signal-hook chains them), so one Ctrl-C starts
//! both drains and `run` returns for each once drained, and a second one
//! ends the process at once, as it ends a single ringside. Children would
//! need all of that built again around them: forwarding a signal the
//! terminal already sent to the whole process group (a child that gets it
//! twice exits 1 at once), a death signal so that no proxy outlives a
//! killed demo, and their output collected. The price of one process:
//! both proxies' `process_*` series (CPU, memory, fds) are the demo's
//! whole process, origins and clients included, and their logs share
//! stderr.

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
    let traffic = traffic::run(outbound)?;
    report::traffic_done(&traffic);
    report::balancing(origins, &traffic);
    report::proxies(proxies, &traffic)?;
    report::try_next(outbound, proxies);
    Ok(())
}
