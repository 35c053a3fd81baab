//! Identities minted in memory for the tests of this folder: no PEM files
//! are checked in.

use std::time::{Duration, SystemTime};

use rustls::pki_types::UnixTime;

use super::identity::{Identity, IdentityError, IdentityPem};
use super::mint::{self, Minted, Validity};
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
