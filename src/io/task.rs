//! Tasks and time on the shard's executor: spawning, sleeping, timeouts,
//! and the gate a shard's connection tasks run behind so that a drain can
//! wait for them.

use std::future::Future;
use std::time::Duration;

use futures_lite::future;
use glommio::sync::Gate;

/// Runs `task` on this shard's executor, on its own.
pub fn spawn(task: impl Future<Output = ()> + 'static) {
    glommio::spawn_local(task).detach();
}

/// Runs `task` on its own once the tasks already waiting to run on this
/// shard have had their turn. (`spawn` polls a new task at once, before
/// the spawning task goes on.)
pub fn spawn_queued(task: impl Future<Output = ()> + 'static) {
    let queue = glommio::executor().current_task_queue();
    glommio::spawn_local_into(task, queue)
        .expect("the only error is a queue that does not exist, and this one runs")
        .detach();
}

pub async fn sleep(duration: Duration) {
    glommio::timer::sleep(duration).await;
}

/// `None` when `duration` passed before `task` finished (it is dropped).
pub async fn timeout<T>(duration: Duration, task: impl Future<Output = T>) -> Option<T> {
    let finished = async { Some(task.await) };
    let expired = async {
        sleep(duration).await;
        None
    };
    future::or(finished, expired).await
}

/// The tasks a drain waits for: once closed, it takes no new ones.
pub struct Tasks {
    gate: Gate,
}

impl Tasks {
    pub fn new() -> Tasks {
        Tasks { gate: Gate::new() }
    }

    /// Spawns `task` behind the gate; false once the gate is closed.
    pub fn spawn(&self, task: impl Future<Output = ()> + 'static) -> bool {
        self.gate.spawn(task).map(|task| task.detach()).is_ok()
    }

    /// Takes no new tasks and resolves when every running one has ended.
    pub async fn close(&self) {
        let _ = self.gate.close().await;
    }
}

impl Default for Tasks {
    fn default() -> Self {
        Self::new()
    }
}
