//! Workload identities for the mesh tests, minted with the built binary's
//! `ringside identity` as the README shows a user: one CA, and a folder
//! per identity holding `cert.pem`, `key.pem` and `trust-anchors.pem`;
//! and the two sides of a mesh on loopback, a client side whose route's
//! upstream is a mesh peer and the server side's inbound listener.

use std::net::SocketAddr;

use super::{Launch, Ringside, TempDir, BIN};

/// A CA in `ca/` and one folder per `(folder, name)` identity.
pub fn minted(identities: &[(&str, &str)]) -> TempDir {
    let dir = TempDir::new();
    let ca = dir.join("ca");
    mint(&["identity", "ca", "--out", &ca]);
    for (folder, name) in identities {
        let out = dir.join(folder);
        mint(&[
            "identity", "issue", "--ca", &ca, "--name", name, "--out", &out,
        ]);
    }
    dir
}

/// Runs `ringside ARGS`, which must succeed.
pub fn mint(args: &[&str]) {
    let output = std::process::Command::new(BIN).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stderr}");
}

impl Launch {
    /// Runs with the identity `name` minted into `dir/folder`.
    pub fn identity(self, dir: &TempDir, folder: &str, name: &str) -> Launch {
        let file = |file: &str| dir.join(&format!("{folder}/{file}"));
        self.arg("--identity-cert", file("cert.pem"))
            .arg("--identity-key", file("key.pem"))
            .arg("--identity-trust-anchors", file("trust-anchors.pem"))
            .arg("--identity-name", name)
    }
}

pub const CLIENT: &str = "web.default.serviceaccount.identity.linkerd.cluster.local";
pub const SERVER: &str = "db.default.serviceaccount.identity.linkerd.cluster.local";

/// A CA and the two identities, each in a folder named after its role.
pub fn identities() -> TempDir {
    minted(&[("client", CLIENT), ("server", SERVER)])
}

/// The server side: an inbound listener on loopback, with `flags`.
pub fn server_side(dir: &TempDir, flags: &[(&str, &str)]) -> Ringside {
    let mut launch = Launch::new()
        .shards(1)
        .arg("--inbound-listen", "127.0.0.1:0");
    for (flag, value) in flags {
        launch = launch.arg(flag, value);
    }
    launch.identity(dir, "server", SERVER).start()
}

/// The client side: a route to `app` (a port of the server side's host),
/// meshed through `server`'s inbound listener.
pub fn client_side(dir: &TempDir, app: SocketAddr, server: &Ringside) -> Ringside {
    let peer = format!("127.0.0.1={SERVER}@{}", server.transparent[0].port());
    let launch = Ringside::route_to([app]).shards(1).arg("--mesh-peer", peer);
    launch.identity(dir, "client", CLIENT).start()
}

/// The identity minted into `dir/folder` as rustls takes it: its trust
/// anchors, its certificate chain and its key.
pub fn pem_identity(
    dir: &TempDir,
    folder: &str,
) -> (
    rustls::RootCertStore,
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let file = |name: &str| dir.join(&format!("{folder}/{name}"));
    let mut roots = rustls::RootCertStore::empty();
    for anchor in CertificateDer::pem_file_iter(file("trust-anchors.pem")).unwrap() {
        roots.add(anchor.unwrap()).unwrap();
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(file("cert.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(file("key.pem")).unwrap();
    (roots, chain, key)
}
