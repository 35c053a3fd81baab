use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::super::fixtures::{a_day, check, config, leaf, new_ca, validity, DB, WEB};
use super::super::mint::{self, Validity};
use super::*;

/// The error's one line, checked to be one line.
fn refusal(result: Result<Identity, IdentityError>) -> String {
    let message = result
        .expect_err("the identity should be refused")
        .to_string();
    assert!(!message.contains('\n'), "more than one line: {message}");
    message
}

#[test]
fn a_good_identity_loads_with_its_expiry() {
    let ca = new_ca();
    let not_after = SystemTime::now() + Duration::from_secs(3 * 3600);
    let validity = Validity {
        not_before: SystemTime::now() - Duration::from_secs(60),
        not_after,
    };
    let spiffe_id = "spiffe://cluster.local/ns/default/sa/web";
    let minted = mint::issue(&ca, WEB, Some(spiffe_id), validity).unwrap();
    let mut config = config(WEB);
    config.spiffe_id = Some(spiffe_id.to_string());
    let identity = check(&config, &minted, &ca.cert_pem).unwrap();
    assert_eq!(identity.name(), WEB);
    let expected = not_after.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(identity.not_after_unix_seconds(), expected);
    assert_eq!(identity.certified_key().cert.len(), 1);
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let ca = new_ca();
    let mut minted = leaf(&ca, WEB);
    minted.key_pem = leaf(&ca, WEB).key_pem;
    let message = refusal(check(&config(WEB), &minted, &ca.cert_pem));
    assert_eq!(
        message,
        "key.pem: the private key does not match the certificate in cert.pem"
    );
}

#[test]
fn an_expired_certificate_is_refused_with_its_dates() {
    let ca = new_ca();
    let minted = mint::issue(&ca, WEB, None, validity(-7200, -3600)).unwrap();
    let message = refusal(check(&config(WEB), &minted, &ca.cert_pem));
    let expired_at =
        humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(3600));
    // The minute is enough: the certificate was minted within the test.
    let minute = &expired_at.to_string()[..16];
    assert!(
        message.starts_with("cert.pem: the certificate expired at ") && message.contains(minute),
        "{message}"
    );
    assert!(message.contains("(valid from "), "{message}");
}

#[test]
fn a_certificate_not_yet_valid_is_refused() {
    let ca = new_ca();
    let minted = mint::issue(&ca, WEB, None, validity(3600, 7200)).unwrap();
    let message = refusal(check(&config(WEB), &minted, &ca.cert_pem));
    assert!(
        message.starts_with("cert.pem: the certificate is not valid before "),
        "{message}"
    );
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let ca = new_ca();
    let message = refusal(check(&config(WEB), &leaf(&ca, DB), &ca.cert_pem));
    assert_eq!(
        message,
        format!(
            "cert.pem: the certificate's DNS SANs [\"{DB}\"] do not hold the identity name {WEB}"
        )
    );
}

#[test]
fn a_configured_spiffe_id_must_be_a_uri_san() {
    let ca = new_ca();
    let minted = mint::issue(&ca, WEB, Some("spiffe://cluster.local/ns/a/sa/b"), a_day()).unwrap();
    let mut config = config(WEB);
    config.spiffe_id = Some("spiffe://cluster.local/ns/default/sa/web".into());
    let message = refusal(check(&config, &minted, &ca.cert_pem));
    assert!(
        message.starts_with("cert.pem: the certificate's URI SANs [\"spiffe://cluster.local/ns/a/sa/b\"] do not hold the SPIFFE ID spiffe://cluster.local/ns/default/sa/web"),
        "{message}"
    );
}

#[test]
fn a_certificate_of_another_ca_is_refused_and_several_anchors_are_read() {
    let (ca, other) = (new_ca(), new_ca());
    let minted = leaf(&ca, WEB);
    // Both CAs have the same name: the issuer is found, its signature
    // does not hold.
    let message = refusal(check(&config(WEB), &minted, &other.cert_pem));
    assert_eq!(
        message,
        "cert.pem: does not chain to the trust anchors in anchors.pem as a TLS server certificate: InvalidSignatureForPublicKey"
    );
    let both = format!("{}{}", other.cert_pem, ca.cert_pem);
    assert!(check(&config(WEB), &minted, &both).is_ok());
}

#[test]
fn files_without_pem_blocks_are_refused() {
    let ca = new_ca();
    let mut minted = leaf(&ca, WEB);
    let key = minted.key_pem.clone();
    minted.key_pem = "not a key\n".into();
    let message = refusal(check(&config(WEB), &minted, &ca.cert_pem));
    assert_eq!(message, "key.pem: no PEM private key in it");
    minted.key_pem = key;
    let message = refusal(check(&config(WEB), &minted, ""));
    assert_eq!(message, "anchors.pem: no PEM certificate in it");
    minted.cert_pem = minted.key_pem.clone();
    let message = refusal(check(&config(WEB), &minted, &ca.cert_pem));
    assert_eq!(message, "cert.pem: no PEM certificate in it");
}

#[test]
fn an_unreadable_file_is_named() {
    let mut config = config(WEB);
    config.cert = "/nonexistent/ringside/cert.pem".into();
    let message = refusal(Identity::load(&config));
    assert!(
        message.starts_with("/nonexistent/ringside/cert.pem: cannot read: "),
        "{message}"
    );
}
