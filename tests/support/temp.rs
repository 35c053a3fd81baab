//! Files the tests hand to ringside (configs) or to other programs (curl's
//! uploads, openssl's certificate and key), and directories ringside writes
//! into (`ringside identity`). One helper for each, so
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

/// A directory in the system temp dir, removed with its contents when
/// dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory, named by this process and a counter.
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ringside-test-dir-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// `name` inside the directory, as a string for a command line.
    pub fn join(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
