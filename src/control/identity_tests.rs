use std::sync::Arc;
use std::time::{Duration, SystemTime};

use linkerd2_proxy_api::identity::CertifyResponse;

use super::{refresh_in, Certify, CertifyError};
use crate::metrics::IdentityStatus;
use crate::tls::fixtures::{new_ca, validity, DB, WEB};
use crate::tls::identity::{anchors_from_pem, IdentityError};
use crate::tls::mint::{self, Minted};
use crate::tls::rustls_config::CertResolver;

const MIN: Duration = Duration::from_secs(10);
const MAX: Duration = Duration::from_secs(24 * 60 * 60);

#[test]
fn renewal_is_due_at_70_percent_of_what_is_left_within_bounds() {
    let now = SystemTime::now();
    let at = |left: u64| now + Duration::from_secs(left);
    assert_eq!(
        refresh_in(at(1000), now, MIN, MAX),
        Duration::from_secs(700)
    );
    assert_eq!(
        refresh_in(at(5), now, MIN, MAX),
        MIN,
        "at least the minimum"
    );
    assert_eq!(
        refresh_in(at(10 * 86_400), now, MIN, MAX),
        MAX,
        "at most the maximum"
    );
    let none_yet = SystemTime::UNIX_EPOCH;
    assert_eq!(
        refresh_in(none_yet, now, MIN, MAX),
        MIN,
        "before the first: soon"
    );
    assert_eq!(refresh_in(now - Duration::from_secs(1), now, MIN, MAX), MIN);
}

/// A client for `WEB` whose key and request the wrapper wrote, trusting
/// `anchors`.
fn certify(anchors: &Minted) -> Certify {
    let (key_pkcs8, _) = mint::signing_request(WEB).unwrap();
    Certify {
        name: WEB.into(),
        token_file: "token".into(),
        csr_der: Vec::new(),
        key_pkcs8,
        key_path: "key.p8".into(),
        roots: anchors_from_pem("anchors", anchors.cert_pem.as_bytes()).unwrap(),
        resolver: CertResolver::waiting(WEB),
        status: Arc::new(IdentityStatus::default()),
        min_refresh: MIN,
        max_refresh: MAX,
    }
}

/// A request as the wrapper writes it, for the key `certify` holds.
fn answer(certify: &Certify, ca: &Minted, name: &str, for_seconds: i64) -> CertifyResponse {
    let key = rcgen::KeyPair::try_from(certify.key_pkcs8.as_slice()).unwrap();
    let params = rcgen::CertificateParams::new(vec![WEB.to_string()]).unwrap();
    let csr = params.serialize_request(&key).unwrap();
    let leaf = mint::sign_request(ca, csr.der(), name, validity(-60, for_seconds)).unwrap();
    let until = SystemTime::now() + Duration::from_secs(for_seconds.max(0) as u64);
    CertifyResponse {
        leaf_certificate: leaf,
        intermediate_certificates: Vec::new(),
        valid_until: Some(until.into()),
    }
}

#[test]
fn an_answer_for_our_name_and_key_under_our_anchors_is_taken() {
    let ca = new_ca();
    let certify = certify(&ca);
    let identity = certify
        .check(answer(&certify, &ca, WEB, 3600), SystemTime::now())
        .unwrap();
    assert_eq!(identity.name(), WEB);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let left = identity.not_after_unix_seconds() as i64 - now.as_secs() as i64;
    assert!((3500..=3600).contains(&left), "{left}");
}

#[test]
fn an_answer_for_another_name_is_refused() {
    let ca = new_ca();
    let certify = certify(&ca);
    let err = certify
        .check(answer(&certify, &ca, DB, 3600), SystemTime::now())
        .unwrap_err();
    assert!(
        matches!(
            err,
            CertifyError::Refused(IdentityError::NameMissing { .. })
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("the identity service's certificate: "),
        "{err}"
    );
}

#[test]
fn an_answer_under_other_anchors_or_for_another_key_is_refused() {
    let (ca, other_ca) = (new_ca(), new_ca());
    let certify = certify(&ca);
    let err = certify
        .check(answer(&certify, &other_ca, WEB, 3600), SystemTime::now())
        .unwrap_err();
    assert!(
        matches!(err, CertifyError::Refused(IdentityError::Untrusted { .. })),
        "{err}"
    );
    let someone_else = self::certify(&ca);
    let err = certify
        .check(answer(&someone_else, &ca, WEB, 3600), SystemTime::now())
        .unwrap_err();
    assert!(
        matches!(
            err,
            CertifyError::Refused(IdentityError::KeyMismatch { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().starts_with("key.p8: "), "{err}");
}

#[test]
fn an_answer_without_a_future_valid_until_is_refused() {
    let ca = new_ca();
    let certify = certify(&ca);
    let mut without = answer(&certify, &ca, WEB, 3600);
    without.valid_until = None;
    let err = certify.check(without, SystemTime::now()).unwrap_err();
    assert!(matches!(err, CertifyError::NoExpiry), "{err}");
    let mut past = answer(&certify, &ca, WEB, 3600);
    past.valid_until = Some((SystemTime::now() - Duration::from_secs(1)).into());
    let err = certify.check(past, SystemTime::now()).unwrap_err();
    assert!(matches!(err, CertifyError::Expired), "{err}");
    let mut garbage = answer(&certify, &ca, WEB, 3600);
    garbage.leaf_certificate = b"not DER".to_vec();
    let err = certify.check(garbage, SystemTime::now()).unwrap_err();
    assert!(
        matches!(
            err,
            CertifyError::Refused(IdentityError::BadCertificate { .. })
        ),
        "{err}"
    );
}
