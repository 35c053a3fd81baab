//! The demo's workload identities: a development CA and one certificate
//! per proxy, minted as `ringside identity ca | issue` mints them (the same
//! code, the same files), into a directory of its own that is removed when
//! the demo ends. The identity config takes paths, and the files also let
//! a curious reader look at what a mesh identity is made of.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ringside::config::{IdentityAction, IdentityConfig};
use ringside::tls::mint::{self, CERT_FILE, KEY_FILE, TRUST_ANCHORS_FILE};

/// The client's workload: the application behind proxy A.
pub const WEB: &str = "web.demo.serviceaccount.identity.linkerd.cluster.local";
/// The server's workload: the origins behind proxy B.
pub const API: &str = "api.demo.serviceaccount.identity.linkerd.cluster.local";

/// How long the demo's certificates live: a day is more than any demo runs,
/// and little if one leaked.
const DAYS: u32 = 1;

/// The CA and both identities, in a directory of their own.
pub struct Identities {
    dir: Directory,
    pub web: IdentityConfig,
    pub api: IdentityConfig,
}

impl Identities {
    /// Mints the CA and both identities into a new directory named after
    /// this process.
    pub fn mint() -> anyhow::Result<Identities> {
        let dir = Directory::create()?;
        let ca = dir.0.join("ca");
        mint::run(&IdentityAction::Ca {
            out: ca.clone(),
            days: DAYS,
        })?;
        Ok(Identities {
            web: issue(&dir.0, &ca, "web", WEB)?,
            api: issue(&dir.0, &ca, "api", API)?,
            dir,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir.0
    }
}

fn issue(dir: &Path, ca: &Path, folder: &str, name: &str) -> anyhow::Result<IdentityConfig> {
    let out = dir.join(folder);
    mint::run(&IdentityAction::Issue {
        ca: ca.to_path_buf(),
        name: name.to_string(),
        spiffe_id: None,
        days: DAYS,
        out: out.clone(),
    })
    .with_context(|| format!("minting the identity {name}"))?;
    Ok(IdentityConfig {
        cert: out.join(CERT_FILE),
        key: out.join(KEY_FILE),
        trust_anchors: out.join(TRUST_ANCHORS_FILE),
        name: name.to_string(),
        spiffe_id: None,
    })
}

/// A directory under the system temp dir, removed with its contents when
/// dropped: when the demo ends, whichever way, or when minting fails
/// half-way. Only a demo killed outright (SIGKILL, or Ctrl-C in the
/// moment before its proxies are up) leaves it behind.
struct Directory(PathBuf);

impl Directory {
    fn create() -> anyhow::Result<Directory> {
        let dir = std::env::temp_dir().join(format!("ringside-demo-{}", std::process::id()));
        std::fs::create_dir(&dir)
            .with_context(|| format!("creating the identity directory {}", dir.display()))?;
        Ok(Directory(dir))
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.0) {
            eprintln!("demo: cannot remove {}: {err}", self.0.display());
        }
    }
}
