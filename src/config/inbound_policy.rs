//! Who may connect to the inbound listener: `[inbound] authorize` (or
//! `--inbound-authorize`) and `[[inbound.authorize_port]]`, the policy of
//! each inbound port, as Linkerd names them (`deny`,
//! `all-unauthenticated`, `all-authenticated`) or a list of client
//! identities, where `*.suffix` matches any identity under `suffix`. The
//! proxy evaluates it in `proxy/authorize.rs`.

use serde::{Deserialize, Serialize};

use super::iptables::PortRange;
use super::value::identity_name;
use super::{Args, ConfigError};

/// Who may connect to an inbound port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorize {
    Deny,
    /// Anyone, with or without a client certificate (Linkerd's default).
    AllUnauthenticated,
    /// Any client that presented a certificate of the trust anchors.
    AllAuthenticated,
    /// Clients whose identity is one of these.
    Identities(Vec<IdentityMatch>),
}

/// One entry of an identity list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityMatch {
    Exact(String),
    /// `*.ns.serviceaccount.identity.linkerd.cluster.local`: any identity
    /// ending in `.` and this.
    Suffix(String),
}

impl IdentityMatch {
    pub fn matches(&self, identity: &str) -> bool {
        match self {
            IdentityMatch::Exact(name) => name == identity,
            IdentityMatch::Suffix(suffix) => identity
                .strip_suffix(suffix.as_str())
                .is_some_and(|head| head.ends_with('.') && head.len() > 1),
        }
    }
}

impl Authorize {
    /// The policy's name, as the `authz` label of the authorization
    /// counters shows it.
    pub fn label(&self) -> &'static str {
        match self {
            Authorize::Deny => "deny",
            Authorize::AllUnauthenticated => "all-unauthenticated",
            Authorize::AllAuthenticated => "all-authenticated",
            Authorize::Identities(_) => "identities",
        }
    }

    /// Whether a client with `identity` (`None`: no client certificate)
    /// may connect.
    pub fn allows(&self, identity: Option<&str>) -> bool {
        match (self, identity) {
            (Authorize::Deny, _) => false,
            (Authorize::AllUnauthenticated, _) => true,
            (Authorize::AllAuthenticated, identity) => identity.is_some(),
            (Authorize::Identities(list), Some(identity)) => {
                list.iter().any(|entry| entry.matches(identity))
            }
            (Authorize::Identities(_), None) => false,
        }
    }
}

/// The inbound policy of every port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundPolicy {
    /// For ports no `authorize_port` names.
    pub default: Authorize,
    pub ports: Vec<(Vec<PortRange>, Authorize)>,
}

impl InboundPolicy {
    pub fn for_port(&self, port: u16) -> &Authorize {
        self.ports
            .iter()
            .find(|(ranges, _)| ranges.iter().any(|r| (r.first..=r.last).contains(&port)))
            .map_or(&self.default, |(_, policy)| policy)
    }
}

/// `"all-authenticated"` or `["web.ns...", "*.prod..."]` in the file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub(super) enum AuthorizeValue {
    Named(String),
    Identities(Vec<String>),
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuthorizePortTable {
    pub ports: Vec<u16>,
    pub authorize: AuthorizeValue,
}

/// `[inbound] authorize` (or `--inbound-authorize`) and the per-port
/// `[[inbound.authorize_port]]` tables. `with_identity`: whether an
/// `[identity]` is configured, without which no policy can be enforced.
pub(super) fn inbound_policy(
    args: &Args,
    file_default: Option<&AuthorizeValue>,
    file_ports: &[AuthorizePortTable],
    with_identity: bool,
) -> Result<InboundPolicy, ConfigError> {
    let authorize =
        |key: &str, value: &AuthorizeValue| enforceable(key, authorize(key, value)?, with_identity);
    let default = match (&args.inbound_authorize, file_default) {
        (Some(flag), _) => authorize("--inbound-authorize", &flag_value(flag))?,
        (None, Some(value)) => authorize("inbound.authorize", value)?,
        (None, None) => Authorize::AllUnauthenticated,
    };
    let ports = file_ports
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let key = format!("inbound.authorize_port[{i}]");
            if entry.ports.is_empty() || entry.ports.contains(&0) {
                return Err(ConfigError::invalid(
                    format!("{key}.ports"),
                    "must list ports, none of them 0",
                ));
            }
            let ranges = entry.ports.iter().map(|p| PortRange::one(*p)).collect();
            Ok((
                ranges,
                authorize(&format!("{key}.authorize"), &entry.authorize)?,
            ))
        })
        .collect::<Result<_, _>>()?;
    Ok(InboundPolicy { default, ports })
}

/// A policy is enforced where mTLS is terminated, which only a proxy with
/// an identity does: without one, any policy but letting everyone in
/// would be accepted and then not enforced (a `deny` port answered 200).
fn enforceable(
    key: &str,
    policy: Authorize,
    with_identity: bool,
) -> Result<Authorize, ConfigError> {
    if with_identity || policy == Authorize::AllUnauthenticated {
        return Ok(policy);
    }
    let what = match &policy {
        Authorize::Identities(_) => "a list of identities".to_string(),
        named => format!("{:?}", named.label()),
    };
    Err(ConfigError::invalid(
        key,
        format!("{what} cannot be enforced without an [identity] (identity.cert, identity.key, identity.trust_anchors, identity.name)"),
    ))
}

/// The flag's value: a policy name, or a comma list of identities.
fn flag_value(flag: &str) -> AuthorizeValue {
    match flag {
        "deny" | "all-unauthenticated" | "all-authenticated" => AuthorizeValue::Named(flag.into()),
        list if list.contains('.') => {
            AuthorizeValue::Identities(list.split(',').map(|id| id.trim().to_string()).collect())
        }
        other => AuthorizeValue::Named(other.into()),
    }
}

fn authorize(key: &str, value: &AuthorizeValue) -> Result<Authorize, ConfigError> {
    match value {
        AuthorizeValue::Named(name) => match name.as_str() {
            "deny" => Ok(Authorize::Deny),
            "all-unauthenticated" => Ok(Authorize::AllUnauthenticated),
            "all-authenticated" => Ok(Authorize::AllAuthenticated),
            other => Err(ConfigError::invalid(
                key,
                format!(
                    "{other:?} is not deny, all-unauthenticated, all-authenticated or a list of identities"
                ),
            )),
        },
        AuthorizeValue::Identities(list) => list
            .iter()
            .map(|entry| match entry.strip_prefix("*.") {
                Some(suffix) => identity_name(key, suffix).map(IdentityMatch::Suffix),
                None => identity_name(key, entry).map(IdentityMatch::Exact),
            })
            .collect::<Result<_, _>>()
            .map(Authorize::Identities),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_allow_whom_they_name() {
        let web = "web.default.serviceaccount.identity.linkerd.cluster.local";
        let list = authorize(
            "k",
            &AuthorizeValue::Identities(vec![
                "api.prod.serviceaccount.identity.linkerd.cluster.local".into(),
                "*.default.serviceaccount.identity.linkerd.cluster.local".into(),
            ]),
        )
        .unwrap();
        assert!(list.allows(Some(web)));
        assert!(!list.allows(Some(
            "default.serviceaccount.identity.linkerd.cluster.local"
        )));
        assert!(!list.allows(Some(
            "web.other.serviceaccount.identity.linkerd.cluster.local"
        )));
        assert!(!list.allows(None));
        assert!(Authorize::AllUnauthenticated.allows(None));
        assert!(!Authorize::AllAuthenticated.allows(None));
        assert!(Authorize::AllAuthenticated.allows(Some(web)));
        assert!(!Authorize::Deny.allows(Some(web)));
    }

    #[test]
    fn a_port_policy_overrides_the_default() {
        let policy = InboundPolicy {
            default: Authorize::AllUnauthenticated,
            ports: vec![(vec![PortRange::one(8080)], Authorize::AllAuthenticated)],
        };
        assert_eq!(policy.for_port(8080), &Authorize::AllAuthenticated);
        assert_eq!(policy.for_port(9090), &Authorize::AllUnauthenticated);
        let err = authorize("inbound.authorize", &AuthorizeValue::Named("nobody".into()));
        assert!(err
            .unwrap_err()
            .to_string()
            .starts_with("inbound.authorize: "));
    }
}
