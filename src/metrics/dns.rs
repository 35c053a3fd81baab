//! What the resolver thread did, for `/metrics` and `/ready`: lookups by
//! name and result, and the names that have no address now. The resolver
//! is not a shard: it writes here a few times a minute at most, and the
//! admin shard reads it at scrape time, so a mutex costs nothing and no
//! shard ever touches it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::text::{escape, Family};

/// How one lookup of a name ended: the `result` label of
/// `ringside_dns_lookups_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LookupResult {
    /// Addresses came back.
    Ok,
    /// A successful answer with no address (NXDOMAIN, or no A or AAAA
    /// record): the name's set is emptied.
    Empty,
    /// No answer in time: the last good set is kept.
    Timeout,
    /// SERVFAIL, REFUSED, a malformed answer, no server reachable: the
    /// last good set is kept.
    Error,
}

impl LookupResult {
    pub fn as_str(self) -> &'static str {
        match self {
            LookupResult::Ok => "ok",
            LookupResult::Empty => "empty",
            LookupResult::Timeout => "timeout",
            LookupResult::Error => "error",
        }
    }

    /// Whether the answer replaced the name's set (a failure keeps it).
    pub fn is_answer(self) -> bool {
        matches!(self, LookupResult::Ok | LookupResult::Empty)
    }
}

/// Shared by the resolver thread (writes) and the admin shard (reads).
#[derive(Debug, Default)]
pub struct DnsStatus {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    lookups: BTreeMap<(String, LookupResult), u64>,
    watched: BTreeSet<String>,
    /// Watched names with at least one address now.
    resolved: BTreeSet<String>,
}

/// A reading of `DnsStatus` for one scrape or one `/ready`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsReading {
    /// Lookups by name and result.
    pub lookups: BTreeMap<(String, LookupResult), u64>,
    /// Watched names with no address at the moment: not resolved yet, or
    /// emptied by NXDOMAIN or an answer without records.
    pub unresolved: BTreeSet<String>,
}

impl DnsStatus {
    /// Counts one lookup of `name`, and whether it has addresses now.
    pub fn looked_up(&self, name: &str, result: LookupResult, resolved: bool) {
        let mut state = self.lock();
        *state.lookups.entry((name.to_string(), result)).or_default() += 1;
        match resolved {
            true => state.resolved.insert(name.to_string()),
            false => state.resolved.remove(name),
        };
    }

    /// The names watched from now on, each unresolved until its first
    /// answer. Counters of names no longer watched stay, as counters do.
    pub fn watching(&self, names: &BTreeSet<String>) {
        let mut state = self.lock();
        state.resolved.retain(|name| names.contains(name));
        state.watched = names.clone();
    }

    pub fn reading(&self) -> DnsReading {
        let state = self.lock();
        DnsReading {
            lookups: state.lookups.clone(),
            unresolved: state.watched.difference(&state.resolved).cloned().collect(),
        }
    }

    /// A panic elsewhere while holding the lock leaves plain counters,
    /// still worth reading.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

const DNS_LOOKUPS_TOTAL: Family = Family::counter(
    "ringside_dns_lookups_total",
    "Lookups of upstream names, by name and result (ok, empty, timeout, error).",
);
const DNS_UNRESOLVED: Family = Family::gauge(
    "ringside_dns_unresolved",
    "1 for each upstream name that has no address now.",
);

impl DnsReading {
    /// The resolver's families; written only when names are watched.
    pub(super) fn encode(&self, out: &mut String) {
        if self.lookups.is_empty() && self.unresolved.is_empty() {
            return;
        }
        DNS_LOOKUPS_TOTAL.write(
            out,
            self.lookups.iter().map(|((name, result), count)| {
                let labels = format!("name=\"{}\",result=\"{}\"", escape(name), result.as_str());
                (labels, *count)
            }),
        );
        DNS_UNRESOLVED.write(
            out,
            self.unresolved
                .iter()
                .map(|name| (format!("name=\"{}\"", escape(name)), 1)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_counted_by_name_and_result_and_unresolved_names_shown() {
        let status = DnsStatus::default();
        let names = BTreeSet::from(["a.test".to_string(), "b.test".to_string()]);
        status.watching(&names);
        status.looked_up("a.test", LookupResult::Ok, true);
        status.looked_up("a.test", LookupResult::Timeout, true);
        status.looked_up("a.test", LookupResult::Timeout, true);
        status.looked_up("b.test", LookupResult::Empty, false);
        let mut page = String::new();
        status.reading().encode(&mut page);
        for line in [
            "# TYPE ringside_dns_lookups_total counter",
            "ringside_dns_lookups_total{name=\"a.test\",result=\"ok\"} 1",
            "ringside_dns_lookups_total{name=\"a.test\",result=\"timeout\"} 2",
            "ringside_dns_lookups_total{name=\"b.test\",result=\"empty\"} 1",
            "ringside_dns_unresolved{name=\"b.test\"} 1",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} in:\n{page}");
        }
        assert!(!page.contains("ringside_dns_unresolved{name=\"a.test\"}"));
    }

    #[test]
    fn a_name_set_again_is_unresolved_until_it_answers() {
        let status = DnsStatus::default();
        let names = BTreeSet::from(["a.test".to_string()]);
        status.watching(&names);
        status.looked_up("a.test", LookupResult::Ok, true);
        status.watching(&BTreeSet::new());
        assert!(status.reading().unresolved.is_empty());
        status.watching(&names);
        assert!(status.reading().unresolved.contains("a.test"));
    }
}
