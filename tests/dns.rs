//! The resolver of upstream names against a DNS server of the test's own
//! (`support::dns_server`): TTLs honoured within `[dns] min_ttl`/`max_ttl`,
//! a lookup that times out or gets SERVFAIL keeps the last addresses,
//! NXDOMAIN empties them, and every lookup is counted by its result.

mod support;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ringside::config::DnsConfig;
use ringside::dns::{Resolver, Update};
use ringside::metrics::{DnsStatus, LookupResult};
use support::dns_server::{Answer, DnsServer};
use support::{eventually, WAIT_LIMIT};

const NAME: &str = "origin.test";

/// A resolver that asks only `server`, gives up on a query after 200 ms,
/// and re-resolves within `min_ttl`..`max_ttl`.
fn watch(server: &DnsServer, min_ttl: Duration, max_ttl: Duration) -> Watching {
    let config = DnsConfig {
        servers: vec![server.addr()],
        timeout: Some(Duration::from_millis(200)),
        attempts: Some(1),
        min_ttl,
        max_ttl,
        refresh: None,
    };
    let status = Arc::new(DnsStatus::default());
    let names = BTreeSet::from([NAME.to_string()]);
    let (sink, updates) = crossbeam_channel::unbounded();
    let sink = Arc::new(move |update| {
        let _ = sink.send(update);
    });
    let resolver = Resolver::start(config, names, status.clone(), sink).unwrap();
    Watching {
        resolver,
        updates,
        status,
    }
}

struct Watching {
    resolver: Resolver,
    updates: crossbeam_channel::Receiver<Update>,
    status: Arc<DnsStatus>,
}

impl Watching {
    fn next_update(&self) -> Update {
        let update = self.updates.recv_timeout(WAIT_LIMIT);
        update.expect("an update from the resolver")
    }

    fn no_update_waiting(&self) -> bool {
        self.updates.try_recv().is_err()
    }

    fn lookups(&self, result: LookupResult) -> u64 {
        let reading = self.status.reading();
        let count = reading.lookups.get(&(NAME.to_string(), result));
        count.copied().unwrap_or(0)
    }

    fn is_unresolved(&self) -> bool {
        self.status.reading().unresolved.contains(NAME)
    }
}

fn addresses(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

const FAST: Duration = Duration::from_millis(100);

#[test]
fn the_first_answer_is_an_update_with_a_and_aaaa() {
    let server = DnsServer::start();
    server.set_records(NAME, &["::1", "127.0.0.2", "127.0.0.1"], 60);
    let watching = watch(&server, FAST, Duration::from_secs(60));
    let update = watching.next_update();
    assert_eq!(update.host, NAME);
    assert_eq!(
        update.addresses,
        addresses(&["127.0.0.1", "127.0.0.2", "::1"])
    );
    assert_eq!(watching.lookups(LookupResult::Ok), 1);
    assert!(!watching.is_unresolved());
}

#[test]
fn a_name_is_asked_again_at_its_ttl_not_sooner() {
    let server = DnsServer::start();
    server.set_records(NAME, &["127.0.0.1"], 1);
    let watching = watch(&server, FAST, Duration::from_secs(60));
    watching.next_update();
    server.set_records(NAME, &["127.0.0.2"], 1);
    assert_eq!(watching.next_update().addresses, addresses(&["127.0.0.2"]));
    let asked = server.a_queries(NAME);
    let gap = asked[1] - asked[0];
    assert!(gap >= Duration::from_secs(1), "asked again after {gap:?}");
}

#[test]
fn a_ttl_below_min_ttl_waits_for_min_ttl() {
    let server = DnsServer::start();
    server.set_records(NAME, &["127.0.0.1"], 0);
    let min_ttl = Duration::from_millis(700);
    let watching = watch(&server, min_ttl, Duration::from_secs(60));
    watching.next_update();
    eventually("a second lookup", || {
        watching.lookups(LookupResult::Ok) >= 2
    });
    let asked = server.a_queries(NAME);
    let gap = asked[1] - asked[0];
    assert!(gap >= min_ttl, "asked again after {gap:?}");
}

#[test]
fn a_ttl_above_max_ttl_is_asked_again_at_max_ttl() {
    let server = DnsServer::start();
    server.set_records(NAME, &["127.0.0.1"], 3600);
    let watching = watch(&server, FAST, Duration::from_millis(300));
    watching.next_update();
    // An hour's TTL, followed, would not see this within the test.
    server.set_records(NAME, &["127.0.0.9"], 3600);
    assert_eq!(watching.next_update().addresses, addresses(&["127.0.0.9"]));
}

#[test]
fn a_lookup_that_times_out_keeps_the_addresses() {
    a_failure_keeps_the_addresses(Answer::Drop, LookupResult::Timeout);
}

#[test]
fn servfail_keeps_the_addresses() {
    a_failure_keeps_the_addresses(Answer::ServFail, LookupResult::Error);
}

fn a_failure_keeps_the_addresses(failure: Answer, counted_as: LookupResult) {
    let server = DnsServer::start();
    server.set_records(NAME, &["127.0.0.1"], 0);
    let watching = watch(&server, FAST, FAST);
    watching.next_update();
    server.set(NAME, failure);
    eventually("failed lookups counted", || {
        watching.lookups(counted_as) >= 2
    });
    assert!(watching.no_update_waiting(), "a failure changed the set");
    assert!(!watching.is_unresolved());
    // Answers again: the change comes through, nothing stuck.
    server.set_records(NAME, &["127.0.0.3"], 0);
    assert_eq!(watching.next_update().addresses, addresses(&["127.0.0.3"]));
}

#[test]
fn nxdomain_empties_the_addresses_and_the_name_comes_back() {
    let server = DnsServer::start();
    server.set_records(NAME, &["127.0.0.1"], 0);
    let watching = watch(&server, FAST, FAST);
    watching.next_update();
    server.set(NAME, Answer::NxDomain);
    assert_eq!(watching.next_update().addresses, addresses(&[]));
    assert!(watching.is_unresolved());
    eventually("empty lookups counted", || {
        watching.lookups(LookupResult::Empty) >= 2
    });
    // Still empty: no update for each repeat.
    assert!(watching.no_update_waiting());
    server.set_records(NAME, &["127.0.0.4"], 0);
    assert_eq!(watching.next_update().addresses, addresses(&["127.0.0.4"]));
    assert!(!watching.is_unresolved());
}

#[test]
fn a_name_that_does_not_resolve_at_start_is_reported_not_fatal() {
    let server = DnsServer::start();
    let watching = watch(&server, FAST, FAST);
    assert!(watching.is_unresolved());
    // The first answer, empty, is an update too.
    assert_eq!(watching.next_update().addresses, addresses(&[]));
    server.set_records(NAME, &["127.0.0.5"], 0);
    assert_eq!(watching.next_update().addresses, addresses(&["127.0.0.5"]));
}

#[test]
fn names_can_be_set_again() {
    let server = DnsServer::start();
    server.set_records(NAME, &["127.0.0.1"], 60);
    server.set_records("other.test", &["127.0.0.7"], 60);
    let watching = watch(&server, FAST, Duration::from_secs(60));
    watching.next_update();
    let names = BTreeSet::from(["other.test".to_string()]);
    watching.resolver.set_names(names);
    let update = watching.next_update();
    assert_eq!(update.host, "other.test");
    assert_eq!(update.addresses, addresses(&["127.0.0.7"]));
    eventually("the old name forgotten", || !watching.is_unresolved());
}

#[test]
fn check_resolves_each_name_once_and_reports_the_missing_ones() {
    let server = DnsServer::start();
    server.set_records(NAME, &["127.0.0.1", "::1"], 60);
    server.set("gone.test", Answer::NxDomain);
    let config = DnsConfig {
        servers: vec![server.addr()],
        ..DnsConfig::default()
    };
    let names = BTreeSet::from([NAME.to_string(), "gone.test".to_string()]);
    let checked = ringside::dns::resolve_once(&config, &names).unwrap();
    let lines: Vec<String> = checked.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        lines,
        [
            "gone.test: unresolved (empty)",
            "origin.test: 127.0.0.1, ::1"
        ]
    );
    assert_eq!(server.a_queries(NAME).len(), 1);
}
