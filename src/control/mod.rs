//! The control thread: Linkerd's control-plane clients (identity here;
//! destination and policy in `discovery`, started on it) on one thread with a current-thread tokio
//! runtime, beside the shards and never on them. linkerd2-proxy runs its
//! identity client on its admin runtime and its discovery on its main one;
//! ringside's shards are glommio executors, so every control-plane client
//! shares this one thread, and what they learn reaches the shards as
//! immutable snapshots (a certificate swapped into the resolver both TLS
//! configs share; endpoint snapshots over channels).
//!
//! - `ControlThread`: the thread and its runtime; `spawn` runs a task on
//!   it, `enter` lets code build a `Channel` from outside a task, and
//!   `shutdown` (or drop) stops it, cancelling what still runs.
//! - `channel`: a gRPC channel to one control-plane service, plaintext on
//!   loopback, otherwise mTLS naming the service without ALPN, balanced
//!   over every address its name resolves to (`resolve`).
//! - `identity`: `Certify` against Linkerd's identity service, and the
//!   mesh configs its certificates go into.
//!
//! `start` puts them together for Linkerd mode; the runtime then starts
//! `discovery` on the same thread, with a `ControlPlane::channel` to each
//! of its services.

mod channel;
mod identity;
mod resolve;

use std::future::Future;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::runtime::{Handle, Runtime};
use tokio::sync::oneshot;

pub use channel::{channel, Channel, Dialer};
pub use identity::IdentityStartError;

use crate::config::{ControlAddr, DnsConfig, LinkerdConfig};
use crate::metrics::IdentityStatus;
use crate::tls::mesh::MeshConfigs;

/// One thread running a current-thread tokio runtime until `shutdown`.
pub struct ControlThread {
    handle: Handle,
    /// Dropping or sending stops the runtime's `block_on`.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ControlThread {
    /// Starts the thread (`ringside-control`) and its runtime.
    pub fn start() -> std::io::Result<ControlThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ringside-control".into())
            .spawn(move || run(runtime, stopped))?;
        Ok(ControlThread {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Runs `task` on the control thread. Tasks run until they end or the
    /// thread stops; a task that panics is logged by tokio and ends alone.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.handle.spawn(task));
    }

    /// The runtime's context on this thread, for what must be built inside
    /// it (`channel` starts tasks) outside a task.
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.handle.enter()
    }

    /// Stops the runtime (every task is dropped at its next await) and
    /// waits for the thread to end.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the control thread panicked");
            }
        }
    }
}

impl Drop for ControlThread {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Drives every spawned task until stopped, then gives them a moment to
/// be dropped (a task blocked in a DNS lookup is not waited for).
fn run(runtime: Runtime, stopped: oneshot::Receiver<()>) {
    let _ = runtime.block_on(stopped);
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
}

/// Linkerd mode's control plane, started: the thread, the mesh configs
/// whose certificate the identity client keeps current, and how its
/// channels authenticate.
pub struct ControlPlane {
    pub thread: ControlThread,
    /// What every shard terminates and originates mTLS with.
    pub mesh: MeshConfigs,
    /// How `channel` reaches the destination and policy services.
    pub dialer: Dialer,
}

/// Reads the identity wrapper's files, builds the mesh configs around a
/// resolver with no certificate yet, starts the control thread and the
/// identity client on it; control-plane names are looked up as `dns`
/// says. `status` shows on `/metrics` and `/ready` (503 until the first
/// certificate).
pub fn start(
    linkerd: &LinkerdConfig,
    dns: &DnsConfig,
    status: Arc<IdentityStatus>,
) -> Result<ControlPlane, IdentityStartError> {
    let (certify, mesh) = identity::Certify::prepare(&linkerd.identity, status)?;
    let thread = ControlThread::start().map_err(IdentityStartError::Thread)?;
    let dialer = {
        let _inside = thread.enter();
        Dialer::new(&mesh, dns)?
    };
    let svc = linkerd.identity.svc.clone();
    thread.spawn(certify.run(svc, dialer.clone()));
    Ok(ControlPlane {
        thread,
        mesh,
        dialer,
    })
}

impl ControlPlane {
    /// A channel to `svc` (`LinkerdConfig`'s destination or policy
    /// service), its tasks on the control thread.
    pub fn channel(&self, svc: &ControlAddr) -> Channel {
        let _inside = self.thread.enter();
        channel(svc, &self.dialer)
    }
}

#[cfg(test)]
mod tests {
    use super::ControlThread;

    #[test]
    fn tasks_run_on_the_thread_and_shutdown_stops_them() {
        let thread = ControlThread::start().unwrap();
        let (ran_tx, ran_rx) = std::sync::mpsc::channel();
        let on = std::thread::current().id();
        thread.spawn(async move {
            ran_tx.send(std::thread::current().id()).unwrap();
        });
        let ran_on = ran_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the task ran");
        assert_ne!(ran_on, on, "on the control thread, not the caller's");

        // A task that never ends is dropped at shutdown, which returns.
        let (dropped_tx, dropped_rx) = std::sync::mpsc::channel::<()>();
        thread.spawn(async move {
            let _held = dropped_tx;
            std::future::pending::<()>().await;
        });
        thread.shutdown();
        assert!(dropped_rx.recv().is_err(), "the pending task was dropped");
    }
}
