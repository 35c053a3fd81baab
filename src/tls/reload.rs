//! Identity rotation. Linkerd rotates certificates every 24 hours, and a
//! proxy must pick up the new files without dropping a connection: a
//! thread of its own looks at the files' modification times every few
//! seconds and, when one changed, loads and checks the identity again.
//! A good one is swapped into the certificate resolver and the trust
//! anchors that every config shares, so new handshakes present the new
//! certificate and trust only the new anchors (a CA taken out of the file
//! is no longer trusted), and open connections go on as they are. A bad
//! one (half-written files, a wrong key, anchors that do not verify the
//! certificate) keeps the old identity and anchors, is logged once per
//! change, and is counted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::identity::{load_anchors, Identity, IdentityError};
use super::mesh::MeshConfigs;
use super::rustls_config::{
    client_config, server_config, CertResolver, TlsConfigError, TrustAnchors, Verifiers,
};
use crate::config::IdentityConfig;
use crate::metrics::IdentityStatus;

/// How often the files are looked at: a stat of three files, cheap, and
/// far shorter than any certificate's life.
const POLL: Duration = Duration::from_secs(2);

/// Why the identity could not be put to use, at start or on a reload.
#[derive(Debug, thiserror::Error)]
pub enum MeshStartError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Config(#[from] TlsConfigError),
}

/// Loads and checks the identity, builds both configs around one
/// certificate resolver, and starts the thread that rotates it. `status`
/// shows its expiry and failed reloads on `/metrics`.
///
/// A certificate or key file that does not exist yet is waited for, as
/// Linkerd's proxy waits for its certificate to be issued: the configs
/// are built around the trust anchors, every handshake fails until the
/// files appear and pass the checks, and `/ready` answers 503 meanwhile.
/// Files that are there but wrong stop the start.
pub fn start(
    config: &IdentityConfig,
    status: Arc<IdentityStatus>,
) -> Result<MeshConfigs, MeshStartError> {
    let (configs, rotation) = Rotation::start(config, status)?;
    let spawned = std::thread::Builder::new()
        .name("ringside-identity".into())
        .spawn(move || rotation.watch());
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "cannot watch the identity files: no rotation");
    }
    Ok(configs)
}

/// What a reload replaces inside the configs every shard shares.
struct Rotation {
    config: IdentityConfig,
    resolver: Arc<CertResolver>,
    anchors: Arc<TrustAnchors>,
    status: Arc<IdentityStatus>,
}

impl Rotation {
    /// The configs, built around what the files hold now, and what will
    /// rotate them; no thread yet.
    fn start(
        config: &IdentityConfig,
        status: Arc<IdentityStatus>,
    ) -> Result<(MeshConfigs, Rotation), MeshStartError> {
        let (roots, resolver) = if config.cert.exists() && config.key.exists() {
            let identity = Identity::load(config)?;
            status.loaded(identity.not_after_unix_seconds());
            (identity.roots(), CertResolver::new(&identity))
        } else {
            let roots = load_anchors(config)?;
            tracing::warn!(
                cert = %config.cert.display(),
                "identity not issued yet: waiting for it, not ready until then"
            );
            (roots, CertResolver::waiting(&config.name))
        };
        let anchors = TrustAnchors::new(roots)?;
        let configs = MeshConfigs {
            name: config.name.clone(),
            server: server_config(Arc::clone(&anchors), Arc::clone(&resolver))?,
            client: client_config(Arc::clone(&anchors), Arc::clone(&resolver))?,
        };
        let rotation = Rotation {
            config: config.clone(),
            resolver,
            anchors,
            status,
        };
        Ok((configs, rotation))
    }

    fn watch(self) {
        let mut seen = stamps(&self.config);
        loop {
            std::thread::sleep(POLL);
            let now = stamps(&self.config);
            if now != seen {
                seen = now;
                self.reload();
            }
        }
    }

    /// Loads and checks the files again (the certificate must chain to
    /// the new anchors): a good identity and its anchors are in use for
    /// the next handshake; a bad set keeps the old, logged once and
    /// counted.
    fn reload(&self) {
        let loaded = Identity::load(&self.config)
            .map_err(MeshStartError::from)
            .and_then(|identity| Ok((Verifiers::of(identity.roots())?, identity)));
        match loaded {
            Ok((verifiers, identity)) => {
                self.anchors.swap(verifiers);
                self.resolver.swap(identity.certified_key());
                self.status.loaded(identity.not_after_unix_seconds());
                tracing::info!(
                    name = identity.name(),
                    "identity and trust anchors reloaded"
                );
            }
            Err(err) => {
                self.status.reload_failed();
                tracing::warn!(error = %err, "identity reload failed: keeping the old one");
            }
        }
    }
}

/// The files' modification times (`None` for one that cannot be read).
fn stamps(config: &IdentityConfig) -> Vec<Option<SystemTime>> {
    let files: [&PathBuf; 3] = [&config.cert, &config.key, &config.trust_anchors];
    files
        .iter()
        .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
        .collect()
}

#[cfg(test)]
#[path = "reload_tests.rs"]
mod tests;
