//! Identities minted in memory for the tests of this folder: no PEM files
//! are checked in.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::UnixTime;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

use super::identity::{Identity, IdentityError, IdentityPem};
use super::mint::{self, Minted, Validity};
use super::rustls_config::{server_name, TrustAnchors};
use crate::config::IdentityConfig;

pub(crate) const WEB: &str = "web.default.serviceaccount.identity.linkerd.cluster.local";
pub(crate) const DB: &str = "db.default.serviceaccount.identity.linkerd.cluster.local";

pub(crate) fn a_day() -> Validity {
    Validity::days_from_now(1)
}

/// From `from` to `to` seconds away from now (negative: in the past).
pub(crate) fn validity(from: i64, to: i64) -> Validity {
    let at = |offset: i64| {
        let now = SystemTime::now();
        let by = Duration::from_secs(offset.unsigned_abs());
        if offset < 0 {
            now - by
        } else {
            now + by
        }
    };
    Validity {
        not_before: at(from),
        not_after: at(to),
    }
}

pub(crate) fn new_ca() -> Minted {
    mint::ca(a_day()).unwrap()
}

pub(crate) fn leaf(ca: &Minted, name: &str) -> Minted {
    mint::issue(ca, name, None, a_day()).unwrap()
}

/// The configuration of `name`, with file names the errors will show.
pub(crate) fn config(name: &str) -> IdentityConfig {
    IdentityConfig {
        cert: "cert.pem".into(),
        key: "key.pem".into(),
        trust_anchors: "anchors.pem".into(),
        name: name.to_string(),
        spiffe_id: None,
    }
}

/// `leaf`'s certificate and key checked against `anchors` (PEM) now.
pub(crate) fn check(
    config: &IdentityConfig,
    leaf: &Minted,
    anchors: &str,
) -> Result<Identity, IdentityError> {
    let pem = IdentityPem {
        cert: leaf.cert_pem.as_bytes(),
        key: leaf.key_pem.as_bytes(),
        trust_anchors: anchors.as_bytes(),
    };
    Identity::from_pem(config, &pem, UnixTime::now())
}

/// A valid identity for `name` under `ca`.
pub(crate) fn identity(ca: &Minted, name: &str) -> Identity {
    check(&config(name), &leaf(ca, name), &ca.cert_pem).unwrap()
}

/// The trust anchors `identity` was checked against, for a config.
pub(crate) fn anchors_of(identity: &Identity) -> Arc<TrustAnchors> {
    TrustAnchors::new(identity.roots()).unwrap()
}

/// Which side refused the handshake, and why.
#[derive(Debug)]
pub(crate) enum Refused {
    Client(rustls::Error),
    Server(rustls::Error),
}

/// Moves every TLS record `from` has to send into `to`, then lets `to`
/// process them; whether anything moved.
pub(crate) fn deliver(from: &mut Connection, to: &mut Connection) -> Result<bool, rustls::Error> {
    let mut bytes = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut bytes).unwrap();
    }
    let mut unread = &bytes[..];
    while !unread.is_empty() {
        to.read_tls(&mut unread).unwrap();
        to.process_new_packets()?;
    }
    Ok(!bytes.is_empty())
}

/// Flights both ways until neither side has more to say; the first side
/// to fail the handshake, if one does.
pub(crate) fn handshake(client: &mut Connection, server: &mut Connection) -> Result<(), Refused> {
    loop {
        let to_server = deliver(client, server).map_err(Refused::Server)?;
        let to_client = deliver(server, client).map_err(Refused::Client)?;
        if !to_server && !to_client {
            assert!(!client.is_handshaking() && !server.is_handshaking());
            return Ok(());
        }
    }
}

/// A connection from `client` (expecting `peer`) to a server of `server`.
pub(crate) fn connect(
    client: Arc<ClientConfig>,
    peer: &str,
    server: Arc<ServerConfig>,
) -> (Connection, Connection) {
    let client = ClientConnection::new(client, server_name(peer).unwrap()).unwrap();
    let server = ServerConnection::new(server).unwrap();
    (client.into(), server.into())
}

/// A directory of its own under the system temp dir, removed at the end.
pub(crate) struct Dir(pub PathBuf);

impl Dir {
    pub(crate) fn new(tag: &str) -> Dir {
        let path = std::env::temp_dir().join(format!(
            "ringside-tls-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        Dir(path)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
