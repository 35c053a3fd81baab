//! Workload identities for the mesh tests, minted with the built binary's
//! `ringside identity` as the README shows a user: one CA, and a folder
//! per identity holding `cert.pem`, `key.pem` and `trust-anchors.pem`.

use super::{Launch, TempDir, BIN};

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
