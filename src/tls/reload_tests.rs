//! Rotation of all three files, driven by calling `reload` as the
//! watcher would after a change: no thread, no waiting.

use rustls::{ClientConfig, ServerConfig};

use super::super::fixtures::config as fixture_config;
use super::super::fixtures::{
    anchors_of, check, connect, handshake, leaf, new_ca, Dir, Refused, DB, WEB,
};
use super::super::mint::Minted;
use super::*;

/// Writes an identity's three files: `leaf`'s certificate and key, and
/// `anchors` as the trust anchors.
fn write(config: &IdentityConfig, leaf: &Minted, anchors: &str) {
    std::fs::write(&config.cert, &leaf.cert_pem).unwrap();
    std::fs::write(&config.key, &leaf.key_pem).unwrap();
    std::fs::write(&config.trust_anchors, anchors).unwrap();
}

fn files_in(dir: &Dir) -> IdentityConfig {
    std::fs::create_dir_all(&dir.0).unwrap();
    IdentityConfig {
        cert: dir.0.join("cert.pem"),
        key: dir.0.join("key.pem"),
        trust_anchors: dir.0.join("anchors.pem"),
        name: WEB.to_string(),
        spiffe_id: None,
    }
}

/// A peer `name` under `ca` that trusts both CAs (so that only our side
/// has a reason to refuse), as a client config and as a server config.
fn peer(ca: &Minted, name: &str, both: &str) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let identity = check(&fixture_config(name), &leaf(ca, name), both).unwrap();
    let resolver = CertResolver::new(&identity);
    (
        client_config(anchors_of(&identity), Arc::clone(&resolver)).unwrap(),
        server_config(anchors_of(&identity), resolver).unwrap(),
    )
}

/// Whether our server lets in a peer of `ca`, and whether our client
/// takes a server of `ca`: one new handshake each way.
fn trusted(configs: &MeshConfigs, ca: &Minted, both: &str) -> (bool, bool) {
    let (client, _) = peer(ca, DB, both);
    let (mut c, mut s) = connect(client, WEB, Arc::clone(&configs.server));
    let inbound = match handshake(&mut c, &mut s) {
        Ok(()) => true,
        Err(Refused::Server(_)) => false,
        Err(other) => panic!("our server should decide: {other:?}"),
    };
    let (_, server) = peer(ca, WEB, both);
    let (mut c, mut s) = connect(Arc::clone(&configs.client), WEB, server);
    let outbound = match handshake(&mut c, &mut s) {
        Ok(()) => true,
        Err(Refused::Client(_)) => false,
        Err(other) => panic!("our client should decide: {other:?}"),
    };
    (inbound, outbound)
}

#[test]
fn rotated_trust_anchors_are_trusted_and_the_old_ones_are_not() {
    let dir = Dir::new("rotate-anchors");
    let config = files_in(&dir);
    let (ca1, ca2) = (new_ca(), new_ca());
    let both = format!("{}{}", ca1.cert_pem, ca2.cert_pem);
    write(&config, &leaf(&ca1, WEB), &ca1.cert_pem);
    let status = Arc::new(IdentityStatus::default());
    let (configs, rotation) = Rotation::start(&config, Arc::clone(&status)).unwrap();
    assert_eq!(trusted(&configs, &ca1, &both), (true, true));
    assert_eq!(trusted(&configs, &ca2, &both), (false, false));

    write(&config, &leaf(&ca2, WEB), &ca2.cert_pem);
    rotation.reload();
    assert_eq!(status.reading().reload_failures, 0);
    assert_eq!(
        trusted(&configs, &ca2, &both),
        (true, true),
        "CA2 after the rotation"
    );
    assert_eq!(
        trusted(&configs, &ca1, &both),
        (false, false),
        "CA1 removed"
    );
}

#[test]
fn an_invalid_set_keeps_the_old_identity_and_is_counted() {
    let dir = Dir::new("invalid-anchors");
    let config = files_in(&dir);
    let (ca1, ca2) = (new_ca(), new_ca());
    let both = format!("{}{}", ca1.cert_pem, ca2.cert_pem);
    write(&config, &leaf(&ca1, WEB), &ca1.cert_pem);
    let status = Arc::new(IdentityStatus::default());
    let (configs, rotation) = Rotation::start(&config, Arc::clone(&status)).unwrap();

    // Anchors of CA2 that do not verify a certificate of CA1.
    write(&config, &leaf(&ca1, WEB), &ca2.cert_pem);
    rotation.reload();
    // An unreadable anchors file.
    std::fs::remove_file(&config.trust_anchors).unwrap();
    rotation.reload();
    assert_eq!(status.reading().reload_failures, 2);
    assert_eq!(
        trusted(&configs, &ca1, &both),
        (true, true),
        "the old identity"
    );
    assert_eq!(trusted(&configs, &ca2, &both), (false, false));
}
