//! `[identity]`: the workload identity ringside presents to other ringside
//! proxies over mutual TLS, as Linkerd's proxy does. Off unless one of its
//! keys is given; then the certificate, its key, the trust anchors and the
//! name are all required, since an identity missing any of them could not
//! finish a handshake. Only the keys are checked here; what the files hold
//! is checked where they are read (`tls::identity`), by `--check` too.
//! The flags of `ringside identity ca | issue`, which mints development
//! certificates of the same shape, are with the other subcommands in
//! `cli.rs`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::value::{check_name, check_spiffe_id, layered};
use super::{Args, ConfigError};

/// The identity files and names, as given; paths are relative to the
/// working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// PEM certificate chain, leaf first: what this proxy presents.
    pub cert: PathBuf,
    /// PEM private key of the leaf certificate.
    pub key: PathBuf,
    /// PEM certificates (one or more) that peers' chains must end at.
    pub trust_anchors: PathBuf,
    /// The DNS-like name peers send as SNI and expect in our DNS SAN, e.g.
    /// `web.default.serviceaccount.identity.linkerd.cluster.local`.
    pub name: String,
    /// A SPIFFE URI the certificate must also hold as a URI SAN, when set.
    pub spiffe_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IdentityTable {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub trust_anchors: Option<String>,
    pub name: Option<String>,
    pub spiffe_id: Option<String>,
}

/// `[identity]` over its flags: `None` when no key is given anywhere.
pub(super) fn identity(
    args: &Args,
    table: &IdentityTable,
) -> Result<Option<IdentityConfig>, ConfigError> {
    let cert = layered(&args.identity_cert, &table.cert);
    let key = layered(&args.identity_key, &table.key);
    let trust_anchors = layered(&args.identity_trust_anchors, &table.trust_anchors);
    let name = layered(&args.identity_name, &table.name);
    let spiffe_id = layered(&args.identity_spiffe_id, &table.spiffe_id);
    let given = [cert, key, trust_anchors, name, spiffe_id];
    if given.iter().all(Option::is_none) {
        return Ok(None);
    }
    let required = |key: &str, value: Option<&str>| match value.map(str::trim) {
        Some(value) if !value.is_empty() => Ok(value.to_string()),
        _ => Err(ConfigError::invalid(
            format!("identity.{key}"),
            format!(
                "required with the other identity keys (--identity-{}, RINGSIDE_IDENTITY_{})",
                key.replace('_', "-"),
                key.to_uppercase()
            ),
        )),
    };
    let cert = required("cert", cert)?;
    let key = required("key", key)?;
    let trust_anchors = required("trust_anchors", trust_anchors)?;
    let name = required("name", name)?;
    check_name("identity.name", &name)?;
    let spiffe_id = spiffe_id.map(str::trim);
    if let Some(id) = spiffe_id {
        check_spiffe_id("identity.spiffe_id", id)?;
    }
    Ok(Some(IdentityConfig {
        cert: cert.into(),
        key: key.into(),
        trust_anchors: trust_anchors.into(),
        name,
        spiffe_id: spiffe_id.map(str::to_string),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::file::FileConfig;
    use super::super::Config;
    use clap::Parser;

    fn merged(flags: &[&str], toml: &str) -> Result<Config, super::ConfigError> {
        let args =
            super::Args::try_parse_from(std::iter::once("ringside").chain(flags.to_vec())).unwrap();
        Config::merge(&args, FileConfig::parse(toml).unwrap())
    }

    const FULL: &str = "[identity]\ncert = \"c.pem\"\nkey = \"k.pem\"\ntrust_anchors = \"a.pem\"\nname = \"web.default.serviceaccount.identity.linkerd.cluster.local\"\n";

    #[test]
    fn off_unless_a_key_is_given() {
        assert_eq!(merged(&[], "").unwrap().identity, None);
        let identity = merged(&[], FULL).unwrap().identity.unwrap();
        assert_eq!(identity.key.to_str(), Some("k.pem"));
        assert_eq!(identity.spiffe_id, None);
    }

    #[test]
    fn flags_override_the_file_and_are_shown_by_check() {
        let flags = [
            "--identity-name",
            "db.prod.serviceaccount.identity.linkerd.cluster.local",
            "--identity-spiffe-id",
            "spiffe://cluster.local/ns/prod/sa/db",
        ];
        let config = merged(&flags, FULL).unwrap();
        let identity = config.identity.as_ref().unwrap();
        assert!(identity.name.starts_with("db.prod."));
        let shown = config.to_string();
        assert!(
            shown.contains("\n[identity]\ncert = \"c.pem\"\n"),
            "{shown}"
        );
        assert!(shown.contains("spiffe_id = \"spiffe://cluster.local/ns/prod/sa/db\""));
        assert_eq!(merged(&[], &shown).unwrap(), config, "{shown}");
    }

    #[test]
    fn any_key_needs_the_four_required_ones_and_names_the_missing_one() {
        let err = merged(&["--identity-cert", "c.pem"], "").unwrap_err();
        assert!(
            err.to_string().starts_with("identity.key: required"),
            "{err}"
        );
        let without_anchors = FULL.replace("trust_anchors = \"a.pem\"\n", "");
        let err = merged(&[], &without_anchors).unwrap_err().to_string();
        assert!(err.starts_with("identity.trust_anchors: required"), "{err}");
        assert!(err.contains("--identity-trust-anchors, RINGSIDE_IDENTITY_TRUST_ANCHORS"));
        let err = merged(&["--identity-spiffe-id", "spiffe://x/y"], "").unwrap_err();
        assert!(err.to_string().starts_with("identity.cert: required"));
    }

    #[test]
    fn bad_names_name_the_key() {
        let err = merged(&["--identity-name", "not a name"], FULL).unwrap_err();
        assert!(err.to_string().starts_with("identity.name: "), "{err}");
        for bad in ["http://x/y", "spiffe://", "spiffe:///path"] {
            let err = merged(&["--identity-spiffe-id", bad], FULL).unwrap_err();
            assert!(err.to_string().starts_with("identity.spiffe_id: "), "{err}");
        }
        let err = FileConfig::parse("[identity]\ncertificate = \"x\"\n").unwrap_err();
        assert!(err.contains("certificate"), "{err}");
    }
}
