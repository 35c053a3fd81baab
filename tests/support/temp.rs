//! Files the tests hand to ringside (configs) or to other programs (curl's
//! uploads, openssl's certificate and key). One helper for all of them, so
//! every name is unique across tests running in parallel and every file is
//! removed however the test ends.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A file in the system temp dir, removed when dropped.
pub struct TempPath(PathBuf);

impl TempPath {
    /// A new file holding `contents`, named by this process and a counter.
    pub fn holding(contents: impl AsRef<[u8]>) -> TempPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ringside-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, contents).unwrap();
        TempPath(path)
    }

    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
