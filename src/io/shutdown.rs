//! `Shutdown`: a shard-local signal that fires once. Accept loops stop on
//! it, idle HTTP connections close on it, and the shard's drain starts
//! with it.

use std::cell::Cell;

use glommio::sync::Semaphore;

/// Fires once; everything waiting on it wakes. Shard-local.
pub struct Shutdown {
    /// Never has permits: waiters park on it until `trigger` closes it.
    closed: Semaphore,
    triggered: Cell<bool>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown {
            closed: Semaphore::new(0),
            triggered: Cell::new(false),
        }
    }

    pub fn trigger(&self) {
        self.triggered.set(true);
        self.closed.close();
    }

    pub fn is_triggered(&self) -> bool {
        self.triggered.get()
    }

    /// Resolves once `trigger` has been called. The semaphore never gets a
    /// permit, so `acquire` only returns when `trigger` closes it.
    pub async fn wait(&self) {
        let _ = self.closed.acquire(1).await;
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}
