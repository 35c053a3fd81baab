//! Real handshakes between the two configs, driven over in-memory buffers.

use std::io::{Read, Write};

use super::super::fixtures::{
    a_day, anchors_of, check, config, connect, deliver, handshake, identity, leaf, new_ca, Refused,
    DB, WEB,
};
use super::super::mint;
use super::*;

fn server_of(identity: &Identity) -> Arc<ServerConfig> {
    server_config(anchors_of(identity), CertResolver::new(identity)).unwrap()
}

fn client_of(identity: &Identity) -> Arc<ClientConfig> {
    client_config(anchors_of(identity), CertResolver::new(identity)).unwrap()
}

#[test]
fn both_sides_verify_each_other_and_agree_on_the_transport_alpn() {
    let ca = new_ca();
    let (web, db) = (identity(&ca, WEB), identity(&ca, DB));
    let (mut client, mut server) = connect(client_of(&db), WEB, server_of(&web));
    handshake(&mut client, &mut server).unwrap();

    assert_eq!(client.alpn_protocol(), Some(TRANSPORT_ALPN));
    assert_eq!(server.alpn_protocol(), Some(TRANSPORT_ALPN));
    assert_eq!(
        client.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(peer_identity(&server).as_deref(), Some(DB));
    assert_eq!(peer_identity(&client).as_deref(), Some(WEB));

    client.writer().write_all(b"hello").unwrap();
    deliver(&mut client, &mut server).unwrap();
    let mut received = [0; 5];
    server.reader().read_exact(&mut received).unwrap();
    assert_eq!(&received, b"hello");
}

#[test]
fn a_client_without_a_certificate_is_served_without_an_identity() {
    let ca = new_ca();
    let web = identity(&ca, WEB);
    let anonymous = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(web.roots())
        .with_no_client_auth();
    let (mut client, mut server) = connect(Arc::new(anonymous), WEB, server_of(&web));
    // As linkerd2-proxy's inbound: the port's authorizations decide.
    handshake(&mut client, &mut server).expect("the handshake completes");
    assert_eq!(peer_identity(&server), None);
}

#[test]
fn a_client_certificate_of_another_ca_is_refused() {
    let (ca, other) = (new_ca(), new_ca());
    let web = identity(&ca, WEB);
    let stranger = identity(&other, DB);
    // The stranger trusts our CA, so only the server has a reason to refuse.
    let resolver = CertResolver::new(&stranger);
    let client = client_config(anchors_of(&web), Arc::clone(&resolver)).unwrap();
    let mut client_config = (*client).clone();
    client_config.client_auth_cert_resolver = resolver;
    let (mut client, mut server) = connect(Arc::new(client_config), WEB, server_of(&web));
    // Both CAs have the same name (as every Linkerd trust root is named
    // root.linkerd.cluster.local): the issuer is found by name, and its
    // signature does not hold.
    match handshake(&mut client, &mut server) {
        Err(Refused::Server(rustls::Error::InvalidCertificate(CertificateError::BadSignature))) => {
        }
        other => panic!("expected the server to refuse the issuer: {other:?}"),
    }
}

/// A server that presents `minted`'s certificate whatever the SNI, as a
/// peer that is not who the client expects might.
fn server_presenting(ca: &mint::Minted, minted: &mint::Minted, name: &str) -> Arc<ServerConfig> {
    let presented = check(&config(name), minted, &ca.cert_pem).unwrap();
    let clients = WebPkiClientVerifier::builder_with_provider(presented.roots(), provider())
        .build()
        .unwrap();
    let key = presented.certified_key();
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(clients)
        .with_single_cert(key.cert.clone(), key_der(minted))
        .unwrap();
    Arc::new(config)
}

fn key_der(minted: &mint::Minted) -> rustls::pki_types::PrivateKeyDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(minted.key_pem.as_bytes()).unwrap()
}

#[test]
fn a_server_with_another_identity_is_refused() {
    let ca = new_ca();
    let db = identity(&ca, DB);
    let server = server_presenting(&ca, &leaf(&ca, DB), DB);
    let (mut client, mut server) = connect(client_of(&db), WEB, server);
    match handshake(&mut client, &mut server) {
        Err(Refused::Client(rustls::Error::InvalidCertificate(err))) => {
            assert!(matches!(
                err,
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ));
        }
        other => panic!("expected the client to refuse the name: {other:?}"),
    }
}

#[test]
fn a_wildcard_certificate_does_not_stand_for_an_identity() {
    let ca = new_ca();
    let wildcard = "*.default.serviceaccount.identity.linkerd.cluster.local";
    let minted = mint::issue(&ca, wildcard, None, a_day()).unwrap();
    let server = server_presenting(&ca, &minted, wildcard);
    let (mut client, mut server) = connect(client_of(&identity(&ca, DB)), WEB, server);
    match handshake(&mut client, &mut server) {
        Err(Refused::Client(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ))) => {}
        other => panic!("expected the client to refuse the wildcard: {other:?}"),
    }
}

#[test]
fn the_server_answers_only_its_own_name() {
    let ca = new_ca();
    let (web, db) = (identity(&ca, WEB), identity(&ca, DB));
    let (mut client, mut server) = connect(client_of(&db), DB, server_of(&web));
    assert!(matches!(
        handshake(&mut client, &mut server),
        Err(Refused::Server(_))
    ));
}

#[test]
fn a_swapped_certificate_is_presented_from_the_next_handshake_on() {
    let ca = new_ca();
    let (web, db) = (identity(&ca, WEB), identity(&ca, DB));
    let resolver = CertResolver::new(&web);
    let server = server_config(anchors_of(&web), Arc::clone(&resolver)).unwrap();
    // A new client config each time: a resumed session would show the
    // certificate of the session it resumes.
    let presented = |server: &Arc<ServerConfig>| {
        let (mut client, mut server) = connect(client_of(&db), WEB, Arc::clone(server));
        handshake(&mut client, &mut server).unwrap();
        client.peer_certificates().unwrap()[0].to_vec()
    };
    assert_eq!(presented(&server), web.certified_key().cert[0].to_vec());
    let rotated = identity(&ca, WEB);
    resolver.swap(rotated.certified_key());
    assert_eq!(presented(&server), rotated.certified_key().cert[0].to_vec());
}

/// `minted`'s chain and key as they are, unchecked (an expired one).
fn chain_and_key(
    minted: &mint::Minted,
) -> (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    use rustls::pki_types::pem::PemObject;
    let pem = minted.cert_pem.as_bytes();
    let chain = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (chain, key_der(minted))
}

fn is_expired(err: &rustls::Error) -> bool {
    matches!(
        err,
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        )
    )
}

#[test]
fn an_expired_certificate_is_refused_by_either_side() {
    let ca = new_ca();
    let (web, db) = (identity(&ca, WEB), identity(&ca, DB));
    let two_days_ago = super::super::fixtures::validity(-2 * 86_400, -86_400);
    let expired = mint::issue(&ca, DB, None, two_days_ago).unwrap();
    let (chain, key) = chain_and_key(&expired);

    // A server presenting it: the client refuses.
    let clients = WebPkiClientVerifier::builder_with_provider(db.roots(), provider())
        .build()
        .unwrap();
    let server = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(clients)
        .with_single_cert(chain.clone(), key.clone_key())
        .unwrap();
    let (mut client, mut server) = connect(client_of(&web), DB, Arc::new(server));
    match handshake(&mut client, &mut server) {
        Err(Refused::Client(err)) if is_expired(&err) => {}
        other => panic!("expected the client to refuse the expired server: {other:?}"),
    }

    // A client presenting it: the server refuses.
    let client = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(web.roots())
        .with_client_auth_cert(chain, key)
        .unwrap();
    let (mut client, mut server) = connect(Arc::new(client), WEB, server_of(&web));
    match handshake(&mut client, &mut server) {
        Err(Refused::Server(err)) if is_expired(&err) => {}
        other => panic!("expected the server to refuse the expired client: {other:?}"),
    }
}
