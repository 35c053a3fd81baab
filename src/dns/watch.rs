//! One watched name between two lookups: its last good addresses per
//! family, what a new answer changes, when to ask again, and what is worth
//! a log line. Pure (no I/O, no clock), so each rule is tested on its own.
//!
//! The rules, after the complaints users file against other proxies: a
//! failed lookup (timeout, SERVFAIL) keeps the last good set, since a
//! resolver outage must not empty every route (envoy#2691); a successful
//! empty answer (NXDOMAIN, no record) empties it, since the name's owner
//! said so (envoy#20890); and a name is asked again for its whole life,
//! never resolved only once (haproxy#1278).

use std::net::IpAddr;
use std::time::Duration;

use super::lookup::FamilyAnswer;
use crate::config::DnsConfig;
use crate::metrics::LookupResult;

/// A name's state; the resolver thread holds one per watched name.
#[derive(Debug)]
pub(super) struct Watched {
    name: String,
    /// The last good A and AAAA sets, each sorted.
    families: [Vec<IpAddr>; 2],
    /// Whether any answer came yet: the first one is published even when
    /// it is empty, so the consumer learns the name was asked.
    answered: bool,
    /// Whether the empty set was already logged: an unknown name is
    /// retried every few seconds, and said once.
    empty_logged: bool,
    /// Whether the current run of failures was already logged.
    failure_logged: bool,
}

/// What one lookup did to a name.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Outcome {
    pub result: LookupResult,
    /// The name's new address set, when it changed (or on the first
    /// answer).
    pub changed: Option<Vec<IpAddr>>,
    /// When to look the name up again.
    pub next_lookup_after: Duration,
}

impl Watched {
    pub fn new(name: &str) -> Watched {
        Watched {
            name: name.to_string(),
            families: [Vec::new(), Vec::new()],
            answered: false,
            empty_logged: false,
            failure_logged: false,
        }
    }

    /// Every address now, IPv4 first.
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.families.concat()
    }

    pub fn apply(&mut self, answers: [FamilyAnswer; 2], config: &DnsConfig) -> Outcome {
        let before = self.addresses();
        let mut failure = None;
        let mut answered = false;
        // The soonest family decides: one with addresses at its TTL, one
        // that failed or had none at the shortest period.
        let mut ttl: Option<Duration> = None;
        for (family, answer) in self.families.iter_mut().zip(answers) {
            let family_ttl = match answer {
                FamilyAnswer::Addresses { mut addresses, ttl } => {
                    answered = true;
                    addresses.sort();
                    addresses.dedup();
                    let has_addresses = !addresses.is_empty();
                    *family = addresses;
                    has_addresses.then_some(ttl)
                }
                FamilyAnswer::Failed(result) => {
                    failure.get_or_insert(result);
                    Some(Duration::ZERO)
                }
            };
            ttl = match (ttl, family_ttl) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let after = self.addresses();
        let result = match failure {
            Some(failure) => failure,
            None if after.is_empty() => LookupResult::Empty,
            None => LookupResult::Ok,
        };
        let first = answered && !self.answered;
        self.answered |= answered;
        let changed = (first || after != before).then(|| after.clone());
        self.log(result, changed.as_deref(), &after);
        Outcome {
            result,
            changed,
            next_lookup_after: config.next_lookup_after(ttl.unwrap_or(Duration::ZERO)),
        }
    }

    /// One line when the set changes, one when it becomes empty, one when
    /// lookups start failing; none while things stay as they are.
    fn log(&mut self, result: LookupResult, changed: Option<&[IpAddr]>, now: &[IpAddr]) {
        let name = &self.name;
        if result.is_answer() {
            self.failure_logged = false;
        } else if !self.failure_logged {
            self.failure_logged = true;
            tracing::warn!(
                name,
                result = result.as_str(),
                "DNS lookup failed: the name keeps its last addresses"
            );
        }
        if !now.is_empty() {
            self.empty_logged = false;
            if let Some(addresses) = changed {
                tracing::info!(name, ?addresses, "DNS name's addresses changed");
            }
        } else if result == LookupResult::Empty && !self.empty_logged {
            self.empty_logged = true;
            tracing::warn!(
                name,
                "DNS name has no address (NXDOMAIN or no A/AAAA record): it has no endpoint now"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn answer(addresses: &[&str], ttl_secs: u64) -> FamilyAnswer {
        FamilyAnswer::Addresses {
            addresses: addresses.iter().map(|a| ip(a)).collect(),
            ttl: Duration::from_secs(ttl_secs),
        }
    }

    const TIMEOUT: FamilyAnswer = FamilyAnswer::Failed(LookupResult::Timeout);

    #[test]
    fn the_first_answer_is_published_and_a_repeat_is_not() {
        let config = DnsConfig::default();
        let mut name = Watched::new("origin.test");
        let first = name.apply(
            [answer(&["10.0.0.2", "10.0.0.1"], 30), answer(&[], 0)],
            &config,
        );
        assert_eq!(first.result, LookupResult::Ok);
        assert_eq!(first.changed, Some(vec![ip("10.0.0.1"), ip("10.0.0.2")]));
        // An IPv4-only name is asked again at its A record's TTL.
        assert_eq!(first.next_lookup_after, Duration::from_secs(30));
        let again = name.apply(
            [answer(&["10.0.0.1", "10.0.0.2"], 30), answer(&[], 0)],
            &config,
        );
        assert_eq!(again.changed, None);
    }

    #[test]
    fn ttls_are_clamped_to_min_and_max() {
        let config = DnsConfig::default();
        let mut name = Watched::new("origin.test");
        let short = name.apply([answer(&["10.0.0.1"], 0), answer(&["::1"], 1)], &config);
        assert_eq!(short.next_lookup_after, config.min_ttl);
        let long = name.apply([answer(&["10.0.0.1"], 86_400), answer(&[], 0)], &config);
        assert_eq!(long.next_lookup_after, config.max_ttl);
    }

    #[test]
    fn a_failure_keeps_the_last_set_and_retries_soon() {
        let config = DnsConfig::default();
        let mut name = Watched::new("origin.test");
        name.apply([answer(&["10.0.0.1"], 60), answer(&["::1"], 60)], &config);
        let failed = name.apply([TIMEOUT, TIMEOUT], &config);
        assert_eq!(failed.result, LookupResult::Timeout);
        assert_eq!(failed.changed, None);
        assert_eq!(failed.next_lookup_after, config.min_ttl);
        assert_eq!(name.addresses(), [ip("10.0.0.1"), ip("::1")]);
    }

    #[test]
    fn a_family_that_fails_keeps_its_own_set_while_the_other_changes() {
        let config = DnsConfig::default();
        let mut name = Watched::new("origin.test");
        name.apply([answer(&["10.0.0.1"], 60), answer(&["::1"], 60)], &config);
        let outcome = name.apply([answer(&["10.0.0.9"], 60), TIMEOUT], &config);
        assert_eq!(outcome.result, LookupResult::Timeout);
        assert_eq!(outcome.changed, Some(vec![ip("10.0.0.9"), ip("::1")]));
    }

    #[test]
    fn an_empty_answer_empties_the_set() {
        let config = DnsConfig::default();
        let mut name = Watched::new("origin.test");
        name.apply([answer(&["10.0.0.1"], 60), answer(&[], 0)], &config);
        let emptied = name.apply([answer(&[], 0), answer(&[], 0)], &config);
        assert_eq!(emptied.result, LookupResult::Empty);
        assert_eq!(emptied.changed, Some(vec![]));
        assert_eq!(emptied.next_lookup_after, config.min_ttl);
        assert!(name.empty_logged);
        let still = name.apply([answer(&[], 0), answer(&[], 0)], &config);
        assert_eq!(still.changed, None);
    }

    #[test]
    fn a_name_that_never_answered_publishes_nothing_on_failure() {
        let config = DnsConfig::default();
        let mut name = Watched::new("origin.test");
        let failed = name.apply(
            [TIMEOUT, FamilyAnswer::Failed(LookupResult::Error)],
            &config,
        );
        assert_eq!(
            (failed.result, failed.changed),
            (LookupResult::Timeout, None)
        );
        let empty = name.apply([answer(&[], 0), answer(&[], 0)], &config);
        assert_eq!(empty.changed, Some(vec![]));
    }

    #[test]
    fn a_fixed_refresh_overrides_the_ttl() {
        let config = DnsConfig {
            refresh: Some(Duration::from_millis(200)),
            ..DnsConfig::default()
        };
        let mut name = Watched::new("origin.test");
        let outcome = name.apply([answer(&["10.0.0.1"], 3600), TIMEOUT], &config);
        assert_eq!(outcome.next_lookup_after, Duration::from_millis(200));
    }
}
