//! `EndpointTable`: one `Destination.Get` stream's endpoints, as its
//! updates (`Add`, `Remove`, `NoEndpoints`) leave them, as linkerd2-proxy's
//! `proxy/api-resolve/src/resolve.rs` (`mk_update`) reads them.
//!
//! A stream that breaks keeps its table (the last answer holds while the
//! client reconnects); the first update of the new stream then replaces it
//! whole (`reconnected`), since the new stream starts from nothing and
//! repeats every endpoint it has.
//!
//! The table is bounded (`MAX_ENDPOINTS`): a controller that sends more is
//! broken or hostile, and each endpoint costs its balancer slot and its
//! metric series on every shard.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use linkerd2_proxy_api::destination::{update, Update};

use super::translate;
use crate::config::{Endpoint, EndpointSet};

/// Endpoints one destination keeps. Linkerd's own deployments balance over
/// tens to hundreds of pods; a few thousand is a very large service.
pub const MAX_ENDPOINTS: usize = 4_096;

#[derive(Debug, Default)]
pub struct EndpointTable {
    by_addr: BTreeMap<SocketAddr, Endpoint>,
    /// The stream was re-opened since the table was last changed: its next
    /// update replaces the table.
    stale: bool,
    /// Endpoints refused (bad values, or past the bound), for the log.
    pub refused: u64,
}

impl EndpointTable {
    /// The stream was re-opened: what the table holds stays until the new
    /// stream says otherwise.
    pub fn reconnected(&mut self) {
        self.stale = true;
    }

    /// Applies one update; whether the table changed.
    pub fn apply(&mut self, update: Update) -> bool {
        let Some(update) = update.update else {
            return false;
        };
        let before = self.snapshot();
        if std::mem::take(&mut self.stale) {
            self.by_addr.clear();
        }
        match update {
            update::Update::Add(set) => {
                for weighted in set.addrs {
                    match translate::endpoint(weighted, &set.metric_labels) {
                        Ok(endpoint) => self.add(endpoint),
                        Err(err) => {
                            self.refused += 1;
                            tracing::debug!(error = %err, "endpoint refused");
                        }
                    }
                }
            }
            update::Update::Remove(set) => {
                for addr in set.addrs {
                    if let Ok(addr) = translate::socket_addr(addr) {
                        self.by_addr.remove(&addr);
                    }
                }
            }
            // Whether the service exists or not, it has no endpoint now.
            update::Update::NoEndpoints(_) => self.by_addr.clear(),
        }
        *before != *self.snapshot()
    }

    fn add(&mut self, endpoint: Endpoint) {
        let known = self.by_addr.contains_key(&endpoint.addr);
        if !known && self.by_addr.len() >= MAX_ENDPOINTS {
            self.refused += 1;
            return;
        }
        self.by_addr.insert(endpoint.addr, endpoint);
    }

    /// The endpoints now, in address order.
    pub fn snapshot(&self) -> EndpointSet {
        self.by_addr.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linkerd2_proxy_api::destination::{AddrSet, NoEndpoints, WeightedAddr, WeightedAddrSet};

    fn weighted(addr: &str) -> WeightedAddr {
        let addr: SocketAddr = addr.parse().unwrap();
        WeightedAddr {
            addr: Some(addr.into()),
            weight: 1,
            ..Default::default()
        }
    }

    fn add(addrs: &[&str]) -> Update {
        let addrs = addrs.iter().map(|a| weighted(a)).collect();
        let set = WeightedAddrSet {
            addrs,
            metric_labels: Default::default(),
        };
        Update {
            update: Some(update::Update::Add(set)),
        }
    }

    fn remove(addrs: &[&str]) -> Update {
        let addrs = addrs
            .iter()
            .map(|a| a.parse::<SocketAddr>().unwrap().into())
            .collect();
        Update {
            update: Some(update::Update::Remove(AddrSet { addrs })),
        }
    }

    fn addrs(table: &EndpointTable) -> Vec<String> {
        table
            .snapshot()
            .iter()
            .map(|e| e.addr.to_string())
            .collect()
    }

    #[test]
    fn adds_and_removes_change_the_set_and_repeats_do_not() {
        let mut table = EndpointTable::default();
        assert!(table.apply(add(&["10.0.0.2:80", "10.0.0.1:80"])));
        assert_eq!(addrs(&table), ["10.0.0.1:80", "10.0.0.2:80"]);
        assert!(!table.apply(add(&["10.0.0.1:80"])), "already there");
        assert!(table.apply(remove(&["10.0.0.1:80", "10.0.0.9:80"])));
        assert_eq!(addrs(&table), ["10.0.0.2:80"]);
        let none = Update {
            update: Some(update::Update::NoEndpoints(NoEndpoints { exists: true })),
        };
        assert!(table.apply(none));
        assert!(addrs(&table).is_empty());
        assert!(!table.apply(Update { update: None }), "an empty update");
    }

    #[test]
    fn a_reconnected_stream_keeps_the_set_until_its_first_update_replaces_it() {
        let mut table = EndpointTable::default();
        table.apply(add(&["10.0.0.1:80", "10.0.0.2:80"]));
        table.reconnected();
        assert_eq!(addrs(&table).len(), 2, "kept meanwhile");
        assert!(table.apply(add(&["10.0.0.3:80"])));
        assert_eq!(addrs(&table), ["10.0.0.3:80"], "replaced, not merged");
        assert!(table.apply(add(&["10.0.0.4:80"])));
        assert_eq!(addrs(&table).len(), 2, "then merged again");
    }

    #[test]
    fn hostile_sets_are_bounded_and_bad_endpoints_refused() {
        let mut table = EndpointTable::default();
        let many: Vec<String> = (0..MAX_ENDPOINTS + 100)
            .map(|i| format!("10.{}.{}.{}:80", i >> 16, (i >> 8) & 255, i & 255))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        table.apply(add(&many));
        assert_eq!(table.snapshot().len(), MAX_ENDPOINTS);
        assert_eq!(table.refused, 100);
        // Known endpoints still update past the bound; new ones do not.
        assert!(!table.apply(add(&["10.0.0.0:80"])));
        let mut zero_port = weighted("10.9.9.9:80");
        zero_port.addr.as_mut().unwrap().port = 0;
        let mut huge_port = weighted("10.9.9.8:80");
        huge_port.addr.as_mut().unwrap().port = 70_000;
        let no_addr = WeightedAddr::default();
        let mut table = EndpointTable::default();
        let set = WeightedAddrSet {
            addrs: vec![zero_port, huge_port, no_addr, weighted("10.0.0.1:80")],
            metric_labels: Default::default(),
        };
        table.apply(Update {
            update: Some(update::Update::Add(set)),
        });
        assert_eq!(addrs(&table), ["10.0.0.1:80"]);
        assert_eq!(table.refused, 3);
    }
}
