//! One lookup of one name with hickory: its A and its AAAA records, asked
//! together, each family's answer judged on its own. A server that drops
//! AAAA queries (some home routers and old appliances do) must not keep a
//! name's IPv4 addresses from being used, so a family that failed keeps its
//! own last set while the other one is replaced.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use crate::config::DnsConfig;
use crate::metrics::LookupResult;

/// What one family's query (A or AAAA) gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FamilyAnswer {
    /// The addresses, and the lowest TTL on the way to them (CNAMEs
    /// included). None at all is a successful empty answer.
    Addresses {
        addresses: Vec<IpAddr>,
        ttl: Duration,
    },
    /// No answer to trust: keep what this family had.
    Failed(LookupResult),
}

/// Why the resolver could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the resolver configuration (/etc/resolv.conf): {0}")]
pub struct ResolverConfigError(NetError);

/// Builds hickory's resolver from `[dns]`: `/etc/resolv.conf` unless
/// `servers` is given, with `timeout` and `attempts` over either.
pub(super) fn build_resolver(config: &DnsConfig) -> Result<TokioResolver, ResolverConfigError> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = match config.servers.is_empty() {
        true => Resolver::builder(provider).map_err(ResolverConfigError)?,
        false => Resolver::builder_with_config(given_servers(&config.servers), provider),
    };
    let options: &mut ResolverOpts = builder.options_mut();
    if let Some(timeout) = config.timeout {
        options.timeout = timeout;
    }
    if let Some(attempts) = config.attempts {
        options.attempts = attempts;
    }
    // Every lookup must reach a server: the TTL (clamped) already decides
    // when a name is asked again, and hickory's cache would answer from
    // the record's own TTL instead (with it, tests/dns.rs's max_ttl and
    // min_ttl tests fail: an hour's TTL is never asked again).
    options.cache_size = 0;
    builder.build().map_err(ResolverConfigError)
}

/// Each server over UDP, then TCP for answers too large for a datagram.
fn given_servers(servers: &[SocketAddr]) -> ResolverConfig {
    let name_servers = servers
        .iter()
        .map(|server| {
            let connection = |protocol| {
                let mut connection = ConnectionConfig::new(protocol);
                connection.port = server.port();
                connection
            };
            let connections = vec![
                connection(ProtocolConfig::Udp),
                connection(ProtocolConfig::Tcp),
            ];
            NameServerConfig::new(server.ip(), true, connections)
        })
        .collect();
    ResolverConfig::from_name_servers(name_servers)
}

/// Lookups for another thread's own tasks (the control thread's
/// control-plane names): `[dns]`'s resolver, asked once per call, each
/// answer with its TTL, so the caller decides when to ask again.
#[derive(Clone)]
pub struct Lookups(TokioResolver);

impl Lookups {
    /// Must be called within the tokio runtime that will use it: hickory's
    /// provider takes the runtime it is built in.
    pub fn new(config: &DnsConfig) -> Result<Lookups, ResolverConfigError> {
        build_resolver(config).map(Lookups)
    }

    /// Every A and AAAA address of `name` and the lowest TTL among them;
    /// `None` when neither family could be asked (a timeout, a server
    /// failure), which is not the same as a name with no address.
    pub async fn addresses(&self, name: &str) -> Option<(Vec<IpAddr>, Duration)> {
        let mut found: Option<(Vec<IpAddr>, Duration)> = None;
        for answer in lookup(&self.0, name).await {
            if let FamilyAnswer::Addresses { addresses, ttl } = answer {
                let (all, lowest) = found.get_or_insert((Vec::new(), Duration::MAX));
                if !addresses.is_empty() {
                    *lowest = ttl.min(*lowest);
                }
                all.extend(addresses);
            }
        }
        found.map(|(all, ttl)| {
            (
                all,
                if ttl == Duration::MAX {
                    Duration::ZERO
                } else {
                    ttl
                },
            )
        })
    }
}

/// The A and the AAAA answers for `name`, asked at the same time.
pub(super) async fn lookup(resolver: &TokioResolver, name: &str) -> [FamilyAnswer; 2] {
    let (v4, v6) = futures_lite::future::zip(
        family(resolver, name, RecordType::A),
        family(resolver, name, RecordType::AAAA),
    )
    .await;
    [v4, v6]
}

async fn family(resolver: &TokioResolver, name: &str, record_type: RecordType) -> FamilyAnswer {
    match resolver.lookup(name, record_type).await {
        Ok(lookup) => {
            let records = lookup.answers();
            let addresses = records
                .iter()
                .filter_map(|record| match &record.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                    _ => None,
                })
                .collect();
            let ttl = records.iter().map(|record| record.ttl).min().unwrap_or(0);
            FamilyAnswer::Addresses {
                addresses,
                ttl: Duration::from_secs(ttl.into()),
            }
        }
        Err(err) if err.is_no_records_found() => FamilyAnswer::Addresses {
            addresses: Vec::new(),
            ttl: Duration::ZERO,
        },
        Err(err) => {
            tracing::debug!(name, ?record_type, error = %err, "DNS lookup failed");
            FamilyAnswer::Failed(failure(&err))
        }
    }
}

fn failure(err: &NetError) -> LookupResult {
    match err {
        NetError::Timeout => LookupResult::Timeout,
        _ => LookupResult::Error,
    }
}
