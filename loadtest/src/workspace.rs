//! Where the workspace keeps what cargo builds, so that `compare` finds the
//! release ringside and writes its results beside it, under `target/`, and
//! never into the source tree: a measurement must leave `git status` clean.

use std::path::{Path, PathBuf};

/// The workspace root: this crate's parent folder, fixed when it is built,
/// as the default ringside binary has always been found.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("loadtest/ sits inside the workspace")
}

/// `$CARGO_TARGET_DIR` when set (cargo builds there then, and reads a
/// relative one from where it is run, as this does), else `target/` in the
/// workspace.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => root().join("target"),
    }
}

/// Where `compare` writes JSON and SVG when no `--out-dir` is given.
pub fn default_out_dir() -> PathBuf {
    target_dir().join("loadtest-results")
}

/// The ringside `compare` measures when no `--ringside` is given.
pub fn default_ringside_bin() -> PathBuf {
    target_dir().join("release").join("ringside")
}
