//! How one value is taken from the layers and checked: the flag over the
//! file, one of a few names, a number within bounds, a duration like
//! `"10s"`, a DNS name or a SPIFFE ID. Every section's merge uses these,
//! so each check reads (and names its key) the same way everywhere.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::ConfigError;

/// The flag's value (or its `RINGSIDE_*` variable's), else the file's.
pub(super) fn layered<'a>(flag: &'a Option<String>, file: &'a Option<String>) -> Option<&'a str> {
    flag.as_deref().or(file.as_deref())
}

/// One of a few named values; none given means the first.
pub(super) fn one_of<T: Copy, const N: usize>(
    key: &str,
    value: Option<&str>,
    choices: [(&str, T); N],
) -> Result<T, ConfigError> {
    let Some(given) = value else {
        return Ok(choices[0].1);
    };
    if let Some((_, choice)) = choices.iter().find(|(name, _)| *name == given) {
        return Ok(*choice);
    }
    let names: Vec<String> = choices
        .iter()
        .map(|(name, _)| format!("{name:?}"))
        .collect();
    let expected = match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    };
    Err(ConfigError::invalid(
        key,
        format!("expected {expected}, got {given:?}"),
    ))
}

/// `value` when `allowed` holds it; `rule` says what is allowed.
pub(super) fn within<T: PartialOrd>(
    key: &str,
    value: T,
    allowed: RangeInclusive<T>,
    rule: &str,
) -> Result<T, ConfigError> {
    if allowed.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::invalid(key, rule))
    }
}

pub(super) fn duration_key(
    key: &str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(text) => humantime::parse_duration(text.trim()).map_err(|err| {
            ConfigError::invalid(
                key,
                format!("{text:?} is not a duration like \"10s\": {err}"),
            )
        }),
    }
}

/// A timeout that may be off: `"off"` (or zero) waits forever.
pub(super) fn optional_duration(
    key: &str,
    value: Option<&str>,
    default: Option<Duration>,
) -> Result<Option<Duration>, ConfigError> {
    match value.map(str::trim) {
        None => Ok(default),
        Some("off") => Ok(None),
        Some(text) => {
            let duration = duration_key(key, Some(text), Duration::ZERO)?;
            Ok(Some(duration).filter(|duration| !duration.is_zero()))
        }
    }
}

/// A timeout: zero would fail every wait at once.
pub(super) fn positive_duration(
    key: &str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let duration = duration_key(key, value, default)?;
    if duration.is_zero() {
        return Err(ConfigError::invalid(key, "must be above 0"));
    }
    Ok(duration)
}

/// The name is what peers send as SNI, so it must be a DNS name.
pub(super) fn check_name(key: &str, name: &str) -> Result<(), ConfigError> {
    match rustls_pki_types::DnsName::try_from(name) {
        Ok(_) => Ok(()),
        Err(_) => Err(ConfigError::invalid(
            key,
            format!("{name:?} is not a DNS name"),
        )),
    }
}

/// `spiffe://trust-domain/path`, the only shape a SPIFFE ID takes.
pub(super) fn check_spiffe_id(key: &str, id: &str) -> Result<(), ConfigError> {
    let domain = id
        .strip_prefix("spiffe://")
        .map(|rest| rest.split('/').next());
    match domain {
        Some(Some(domain)) if !domain.is_empty() => Ok(()),
        _ => Err(ConfigError::invalid(
            key,
            format!("{id:?} is not a SPIFFE ID like \"spiffe://cluster.local/ns/default/sa/web\""),
        )),
    }
}

/// An identity is a DNS name (the SNI sent to a peer), compared in lower
/// case.
pub(super) fn identity_name(key: &str, name: &str) -> Result<String, ConfigError> {
    check_name(key, name)?;
    Ok(name.to_ascii_lowercase())
}
