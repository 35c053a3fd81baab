//! The identity's certificate expiry and failed reloads, for `/metrics`:
//! one process-wide value, read by the admin shard. The identity thread
//! writes it a few times a day, so an atomic costs nothing here.

use std::sync::atomic::{AtomicU64, Ordering};

/// The identity as the rotation thread last loaded it.
#[derive(Debug, Default)]
pub struct IdentityStatus {
    not_after: AtomicU64,
    reload_failures: AtomicU64,
}

/// A reading of `IdentityStatus` for one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdentityReading {
    /// When the certificate in use expires, in Unix seconds.
    pub not_after_unix_seconds: u64,
    pub reload_failures: u64,
}

impl IdentityStatus {
    pub fn loaded(&self, not_after_unix_seconds: u64) {
        self.not_after
            .store(not_after_unix_seconds, Ordering::Relaxed);
    }

    /// A valid certificate has been loaded (not only waited for).
    pub fn is_loaded(&self) -> bool {
        self.not_after.load(Ordering::Relaxed) != 0
    }

    pub fn reload_failed(&self) {
        self.reload_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reading(&self) -> IdentityReading {
        IdentityReading {
            not_after_unix_seconds: self.not_after.load(Ordering::Relaxed),
            reload_failures: self.reload_failures.load(Ordering::Relaxed),
        }
    }
}
