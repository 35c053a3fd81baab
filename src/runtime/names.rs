//! The admin shard's side of upstream names: the names the running routes
//! hold, watched by the resolver thread (`dns::Resolver`) under the
//! running `[dns]`, whose answers go to the sink it is given: the
//! endpoint feed, as any other source's. Started with the routes, told
//! again on each reload.

use std::cell::RefCell;
use std::sync::Arc;

use crate::config::{Config, DnsConfig};
use crate::dns::{Resolver, Sink};
use crate::metrics::DnsStatus;

/// The resolver thread, while some route names a host.
pub struct Names {
    /// Where every resolver thread sends its answers.
    sink: Sink,
    status: Arc<DnsStatus>,
    /// The thread and the `[dns]` it runs with; `None` until a route names
    /// a host, or when the resolver could not start.
    running: RefCell<Option<(DnsConfig, Resolver)>>,
}

impl Names {
    /// Watches the names of `config`'s routes from now on.
    pub fn start(config: &Config, sink: Sink, status: Arc<DnsStatus>) -> Names {
        let names = Names {
            sink,
            status,
            running: RefCell::new(None),
        };
        names.follow(config);
        names
    }

    /// Takes the names and `[dns]` of a config (a reload): the same
    /// settings keep the thread, whose names are set again (a name that
    /// stays keeps its addresses and its schedule); other settings start a
    /// new thread in place of the old one.
    pub fn follow(&self, config: &Config) {
        let names = config.upstream_names();
        let mut running = self.running.borrow_mut();
        if let Some((dns, resolver)) = running.as_ref() {
            if *dns == config.dns {
                resolver.set_names(names);
                return;
            }
        }
        // Dropping the old handle stops its thread.
        *running = None;
        self.status.watching(&names);
        if names.is_empty() {
            return;
        }
        let (dns, status, sink) = (config.dns.clone(), self.status.clone(), self.sink.clone());
        match Resolver::start(dns, names, status, sink) {
            Ok(resolver) => *running = Some((config.dns.clone(), resolver)),
            // Not fatal, as a name that does not resolve is not: its
            // routes answer 503 and /ready lists it.
            Err(err) => tracing::error!(error = %err, "upstream names cannot be resolved"),
        }
    }
}
