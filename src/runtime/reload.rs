//! Config reload (SIGHUP, `POST /reload`): the file is read again, under
//! the same flags and environment as at start, and the difference is
//! applied while connections run. `plan` is the decision, pure: which
//! routes are added, removed or changed, or why nothing may change.
//! `Control::reload` carries it out.
//!
//! What a shard holds per route is replaced (`RouteSlot::update`); what it
//! holds for all routes (its timeouts, detect settings, mesh, policies) is
//! built once at start, so a change there is refused naming its key, as is
//! what only start-up can decide (shard count, admin address, listeners
//! outside routes). An invalid file or a refused change changes nothing.

use std::net::SocketAddr;

use crate::config::{Config, Route};

/// What a reload does to the routes, by configured listen address.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Routes to bind and start, as configured (a port may be 0).
    pub added: Vec<Route>,
    /// Routes whose endpoints, protocol or timeout changed: the new
    /// route, its listen address already the bound one.
    pub changed: Vec<Route>,
    /// Bound addresses of the routes to stop.
    pub removed: Vec<SocketAddr>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// A route as it runs: where it was configured to listen, and where it is
/// bound (they differ for port 0).
#[derive(Debug, Clone)]
pub struct Running {
    pub configured: SocketAddr,
    pub route: Route,
}

/// The reload from `old` (running as `running`) to `new`, or the key that
/// cannot change without a restart.
pub fn plan(old: &Config, running: &[Running], new: &Config) -> Result<Plan, &'static str> {
    if let Some(key) = restart_only_change(old, new) {
        return Err(key);
    }
    let mut plan = Plan::default();
    // Several routes may be configured on port 0: they pair up in order.
    let mut claimed = vec![false; running.len()];
    for route in &new.routes {
        let same =
            (0..running.len()).find(|&i| !claimed[i] && running[i].configured == route.listen);
        match same {
            None => plan.added.push(route.clone()),
            Some(index) => {
                claimed[index] = true;
                let now = &running[index];
                let bound = Route {
                    listen: now.route.listen,
                    ..route.clone()
                };
                if bound != now.route {
                    plan.changed.push(bound);
                }
            }
        }
    }
    let gone = running.iter().zip(claimed).filter(|(_, kept)| !kept);
    plan.removed = gone.map(|(r, _)| r.route.listen).collect();
    Ok(plan)
}

/// The first setting outside `[[route]]` that differs, by its key. The
/// default response timeout is a route's, so it may change.
fn restart_only_change(old: &Config, new: &Config) -> Option<&'static str> {
    let mut old_timeouts = old.timeouts;
    old_timeouts.response = new.timeouts.response;
    let checks: [(&'static str, bool); 16] = [
        ("runtime.shards", old.shards == new.shards),
        ("admin.listen", old.admin_addr == new.admin_addr),
        ("runtime.pin", old.pin == new.pin),
        ("log.format", old.log_format == new.log_format),
        ("runtime.backlog", old.backlog == new.backlog),
        ("proxy.forward_mode", old.forward_mode == new.forward_mode),
        (
            "proxy.pipe_size_bytes",
            old.pipe_size_bytes == new.pipe_size_bytes,
        ),
        (
            "proxy.max_connections",
            old.max_connections == new.max_connections,
        ),
        (
            "proxy.max_speculative_connections",
            old.max_speculative_connections == new.max_speculative_connections,
        ),
        (
            "outbound/inbound (transparent listeners)",
            old.transparent == new.transparent,
        ),
        ("detect", old.detect == new.detect),
        ("http2", old.http2 == new.http2),
        (
            "timeouts (other than proxy.response_timeout)",
            old_timeouts == new.timeouts,
        ),
        ("mesh.peer", old.mesh_peers == new.mesh_peers),
        (
            "inbound.authorize",
            old.inbound_policy == new.inbound_policy,
        ),
        ("identity", old.identity == new.identity),
    ];
    checks
        .into_iter()
        .find(|(_, same)| !same)
        .map(|(key, _)| key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Args;
    use clap::Parser;

    fn config(flags: &[&str]) -> Config {
        let args = Args::try_parse_from([&["ringside"], flags].concat()).unwrap();
        Config::load(&args).unwrap()
    }

    fn running(config: &Config) -> Vec<Running> {
        let routes = config.routes.iter().map(|route| Running {
            configured: route.listen,
            route: route.clone(),
        });
        routes.collect()
    }

    #[test]
    fn routes_are_added_changed_and_removed_by_listen_address() {
        let old = config(&[
            "--route",
            "127.0.0.1:7001=127.0.0.1:80",
            "--route",
            "127.0.0.1:7002=127.0.0.1:81",
        ]);
        let new = config(&[
            "--route",
            "127.0.0.1:7001=127.0.0.1:82",
            "--route",
            "127.0.0.1:7003=db.internal:80",
        ]);
        let plan = plan(&old, &running(&old), &new).unwrap();
        assert_eq!(plan.added.len(), 1);
        assert_eq!(plan.added[0].listen.port(), 7003);
        assert_eq!(plan.changed.len(), 1);
        assert_eq!(plan.changed[0].upstreams[0].to_string(), "127.0.0.1:82");
        assert_eq!(plan.removed, ["127.0.0.1:7002".parse().unwrap()]);
        assert!(super::plan(&old, &running(&old), &old).unwrap().is_empty());
    }

    #[test]
    fn what_needs_a_restart_is_refused_by_its_key() {
        let old = config(&[]);
        let mut new = old.clone();
        new.shards = Some(3);
        assert_eq!(plan(&old, &[], &new).unwrap_err(), "runtime.shards");
        let new = config(&["--admin-addr", "127.0.0.1:1"]);
        assert_eq!(plan(&old, &[], &new).unwrap_err(), "admin.listen");
        let new = config(&["--response-timeout", "1s"]);
        assert!(plan(&old, &[], &new).is_ok(), "a route's, so it may change");
    }
}
