//! `Directory`: the admin shard's record of each configured route's
//! upstreams and current endpoint set, and of what each upstream name
//! last resolved to. It decides when a route's set changed; `Control`
//! then publishes the new set to every shard. One producer for every
//! source (the config, the DNS resolver, later a control plane), so the
//! shards never see two versions of a set at once.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use crate::config::{Endpoint, EndpointSet, Route, Upstream};

#[derive(Default)]
pub struct Directory {
    routes: Vec<RouteRecord>,
    /// What each name resolved to last; a name not here has not yet.
    names: HashMap<String, Vec<IpAddr>>,
}

struct RouteRecord {
    /// The route's bound address, which names it to the shards.
    listen: SocketAddr,
    upstreams: Vec<Upstream>,
    endpoints: EndpointSet,
}

/// A route whose set changed, and its new set.
pub type Changed = (SocketAddr, EndpointSet);

impl Directory {
    /// The routes as configured, each with its addresses and the names
    /// already resolved as endpoints; `routes` carry their bound addresses.
    pub fn new(routes: &[Route]) -> Directory {
        let mut directory = Directory::default();
        directory.reconfigure(routes);
        directory
    }

    /// Takes the routes of a reloaded config; names keep what they
    /// resolved to. Returns each route's set.
    pub fn reconfigure(&mut self, routes: &[Route]) -> Vec<Changed> {
        self.routes = routes
            .iter()
            .map(|route| RouteRecord {
                listen: route.listen,
                endpoints: endpoints_of(&route.upstreams, &self.names),
                upstreams: route.upstreams.clone(),
            })
            .collect();
        let sets = self.routes.iter();
        sets.map(|r| (r.listen, r.endpoints.clone())).collect()
    }

    /// Records that `host` resolved to `addrs` (empty: it has none now);
    /// returns the routes whose set this changed.
    pub fn resolved(&mut self, host: &str, addrs: &[IpAddr]) -> Vec<Changed> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.names.insert(host.clone(), addrs.to_vec());
        let mut changed = Vec::new();
        for record in &mut self.routes {
            let names_host = record.upstreams.iter().any(|u| u.host() == Some(&host));
            if !names_host {
                continue;
            }
            let endpoints = endpoints_of(&record.upstreams, &self.names);
            if endpoints != record.endpoints {
                record.endpoints = endpoints.clone();
                changed.push((record.listen, endpoints));
            }
        }
        changed
    }

    /// Sets a route's endpoints as a source with metadata (a control
    /// plane) knows them; `None` when the route is not configured or its
    /// set is already that.
    pub fn set(&mut self, listen: SocketAddr, endpoints: EndpointSet) -> Option<Changed> {
        let record = self.routes.iter_mut().find(|r| r.listen == listen)?;
        if record.endpoints == endpoints {
            return None;
        }
        record.endpoints = endpoints.clone();
        Some((listen, endpoints))
    }

    /// The size of each route's set, by listen address, for the gauge.
    pub fn sizes(&self) -> BTreeMap<String, u64> {
        let routes = self.routes.iter();
        routes
            .map(|r| (r.listen.to_string(), r.endpoints.len() as u64))
            .collect()
    }
}

/// The endpoints `upstreams` stand for: each address, and each address a
/// name resolved to with the name's port, in order, each once.
fn endpoints_of(upstreams: &[Upstream], names: &HashMap<String, Vec<IpAddr>>) -> EndpointSet {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for upstream in upstreams {
        let resolved = match upstream {
            Upstream::Addr(addr) => vec![*addr],
            Upstream::Name { host, port } => names
                .get(host)
                .map(|ips| ips.iter().map(|ip| SocketAddr::new(*ip, *port)).collect())
                .unwrap_or_default(),
        };
        for addr in resolved {
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
    }
    addrs.into_iter().map(Endpoint::plain).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Direction, Protocol};

    fn route(listen: &str, upstreams: &[Upstream]) -> Route {
        Route {
            listen: listen.parse().unwrap(),
            upstreams: upstreams.to_vec(),
            direction: Direction::Outbound,
            protocol: Protocol::Detect,
            response_timeout: None,
            detect_timeout: None,
        }
    }

    fn name(host: &str, port: u16) -> Upstream {
        let host = host.to_string();
        Upstream::Name { host, port }
    }

    #[test]
    fn a_name_adds_its_addresses_once_resolved_and_only_changes_are_reported() {
        let fixed = Upstream::Addr("10.0.0.7:5432".parse().unwrap());
        let routes = [
            route("127.0.0.1:1", &[name("db.internal", 5432), fixed.clone()]),
            route("127.0.0.1:2", &[fixed]),
        ];
        let mut directory = Directory::new(&routes);
        assert_eq!(directory.sizes()["127.0.0.1:1"], 1, "the address alone");
        let ips: Vec<IpAddr> = vec!["10.0.0.8".parse().unwrap(), "10.0.0.7".parse().unwrap()];
        let changed = directory.resolved("DB.internal.", &ips);
        assert_eq!(changed.len(), 1);
        let (listen, set) = &changed[0];
        assert_eq!(listen.port(), 1);
        let addrs: Vec<String> = set.iter().map(|e| e.addr.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.8:5432", "10.0.0.7:5432"], "once each");
        assert!(
            directory.resolved("db.internal", &ips).is_empty(),
            "no change"
        );
        let emptied = directory.resolved("db.internal", &[]);
        assert_eq!(emptied[0].1.len(), 1);
        let listen = "127.0.0.1:2".parse().unwrap();
        let set: EndpointSet = vec![].into();
        assert!(directory.set(listen, set.clone()).is_some());
        assert!(directory.set(listen, set).is_none());
        assert_eq!(directory.sizes()["127.0.0.1:2"], 0);
    }
}
