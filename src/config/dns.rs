//! `[dns]`: how upstream names are resolved and how often again. The
//! resolver itself lives in `src/dns/`; here are its settings, their
//! defaults and the reasons for them.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::value::{duration_key, layered, positive_duration, within};
use super::{parse_addr, Args, ConfigError};

/// A record whose TTL is lower is re-resolved this often all the same.
/// Service registries hand out TTLs of 0 or 1 s (Consul's default is 0);
/// followed to the letter that is a query per name per second, for
/// addresses that change a few times a day. 5 s follows a move within
/// 5 s at a fifth of the load, and is CoreDNS's own TTL for cluster names.
pub const DEFAULT_MIN_TTL: Duration = Duration::from_secs(5);

/// A record whose TTL is higher is re-resolved this often all the same.
/// Static zones hand out TTLs of hours or a day; a proxy that waited that
/// long would keep sending to an address for a day after a migration. One
/// query a minute per name costs nothing and bounds the lag to a minute.
pub const DEFAULT_MAX_TTL: Duration = Duration::from_secs(60);

/// `[dns]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// The name servers asked, instead of `/etc/resolv.conf`'s (tests run
    /// their own server; a host may want a particular one). Empty: read
    /// `/etc/resolv.conf` (nameservers, search, ndots, timeout, attempts).
    pub servers: Vec<SocketAddr>,
    /// How long one query waits for an answer; `None` keeps
    /// `/etc/resolv.conf`'s (`options timeout:`, 5 s by default).
    pub timeout: Option<Duration>,
    /// How many times a query is sent before the lookup fails; `None`
    /// keeps `/etc/resolv.conf`'s (`options attempts:`, 2 by default).
    pub attempts: Option<usize>,
    /// The lower bound on a record's TTL before it is asked again.
    pub min_ttl: Duration,
    /// The upper bound on a record's TTL before it is asked again.
    pub max_ttl: Duration,
    /// When set, every name is re-resolved at this fixed period and TTLs
    /// are ignored.
    pub refresh: Option<Duration>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            servers: Vec::new(),
            timeout: None,
            attempts: None,
            min_ttl: DEFAULT_MIN_TTL,
            max_ttl: DEFAULT_MAX_TTL,
            refresh: None,
        }
    }
}

impl DnsConfig {
    /// When a name whose answer had `ttl` is asked again.
    pub fn next_lookup_after(&self, ttl: Duration) -> Duration {
        match self.refresh {
            Some(refresh) => refresh,
            None => ttl.clamp(self.min_ttl, self.max_ttl),
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DnsTable {
    pub servers: Option<Vec<String>>,
    pub timeout: Option<String>,
    pub attempts: Option<usize>,
    pub min_ttl: Option<String>,
    pub max_ttl: Option<String>,
    pub refresh: Option<String>,
}

/// `[dns]` under `--dns-*` flags and `RINGSIDE_DNS_*` variables.
pub(super) fn dns(args: &Args, table: &DnsTable) -> Result<DnsConfig, ConfigError> {
    let servers = match (&args.dns_servers, &table.servers) {
        (Some(list), _) => servers("--dns-servers", list.split(',').map(str::trim))?,
        (None, Some(list)) => servers("dns.servers", list.iter().map(String::as_str))?,
        (None, None) => Vec::new(),
    };
    let timeout = layered(&args.dns_timeout, &table.timeout)
        .map(|text| positive_duration("dns.timeout", Some(text), Duration::ZERO))
        .transpose()?;
    let attempts = args
        .dns_attempts
        .or(table.attempts)
        .map(|n| within("dns.attempts", n, 1..=10, "must be between 1 and 10"))
        .transpose()?;
    let min_ttl = layered(&args.dns_min_ttl, &table.min_ttl);
    let min_ttl = positive_duration("dns.min_ttl", min_ttl, DEFAULT_MIN_TTL)?;
    let max_ttl = layered(&args.dns_max_ttl, &table.max_ttl);
    let max_ttl = duration_key("dns.max_ttl", max_ttl, DEFAULT_MAX_TTL)?;
    if max_ttl < min_ttl {
        return Err(ConfigError::invalid(
            "dns.max_ttl",
            format!(
                "must be at least dns.min_ttl ({})",
                humantime::format_duration(min_ttl)
            ),
        ));
    }
    let refresh = layered(&args.dns_refresh, &table.refresh)
        .map(|text| positive_duration("dns.refresh", Some(text), Duration::ZERO))
        .transpose()?;
    Ok(DnsConfig {
        servers,
        timeout,
        attempts,
        min_ttl,
        max_ttl,
        refresh,
    })
}

/// `IP:port` each; a list that names none is a mistake, not a way back to
/// `/etc/resolv.conf` (leaving the key out is).
fn servers<'a>(
    key: &str,
    list: impl Iterator<Item = &'a str>,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let servers = list
        .filter(|server| !server.is_empty())
        .enumerate()
        .map(|(i, server)| parse_addr(&format!("{key}[{i}]"), server))
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err(ConfigError::invalid(
            key,
            "names no server (leave it out to use /etc/resolv.conf)",
        ));
    }
    Ok(servers)
}

impl DnsTable {
    /// The effective `[dns]`, for `--check`.
    pub(super) fn effective(dns: &DnsConfig, duration: fn(Duration) -> String) -> DnsTable {
        DnsTable {
            servers: (!dns.servers.is_empty())
                .then(|| dns.servers.iter().map(SocketAddr::to_string).collect()),
            timeout: dns.timeout.map(duration),
            attempts: dns.attempts,
            min_ttl: Some(duration(dns.min_ttl)),
            max_ttl: Some(duration(dns.max_ttl)),
            refresh: dns.refresh.map(duration),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::merged;
    use super::*;

    #[test]
    fn defaults_read_resolv_conf_and_clamp_ttls_to_5s_60s() {
        let dns = merged(&[], "").unwrap().dns;
        assert_eq!(dns, DnsConfig::default());
        assert!(dns.servers.is_empty());
        let secs = Duration::from_secs;
        assert_eq!(dns.next_lookup_after(secs(0)), secs(5));
        assert_eq!(dns.next_lookup_after(secs(30)), secs(30));
        assert_eq!(dns.next_lookup_after(secs(86_400)), secs(60));
    }

    #[test]
    fn a_fixed_refresh_ignores_the_ttl() {
        let dns = merged(&[], "[dns]\nrefresh = \"2s\"\n").unwrap().dns;
        assert_eq!(
            dns.next_lookup_after(Duration::from_secs(3600)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn flags_win_over_the_file() {
        let toml = "[dns]\nservers = [\"10.0.0.1:53\"]\nmin_ttl = \"1s\"\nattempts = 3\n";
        let flags = [
            "--dns-servers",
            "127.0.0.1:5353, 127.0.0.2:53",
            "--dns-min-ttl",
            "2s",
        ];
        let dns = merged(&flags, toml).unwrap().dns;
        let servers: Vec<String> = dns.servers.iter().map(|s| s.to_string()).collect();
        assert_eq!(servers, ["127.0.0.1:5353", "127.0.0.2:53"]);
        assert_eq!(dns.min_ttl, Duration::from_secs(2));
        assert_eq!(dns.attempts, Some(3));
    }

    #[test]
    fn mistakes_name_their_key() {
        for (toml, flags, key) in [
            (
                "[dns]\nservers = [\"ns.example:53\"]\n",
                &[][..],
                "dns.servers[0]:",
            ),
            ("[dns]\nservers = []\n", &[], "dns.servers:"),
            ("", &["--dns-servers", "1.2.3.4"][..], "--dns-servers[0]:"),
            ("[dns]\nmin_ttl = \"0s\"\n", &[], "dns.min_ttl:"),
            (
                "[dns]\nmax_ttl = \"1s\"\n",
                &[],
                "dns.max_ttl: must be at least",
            ),
            ("[dns]\nrefresh = \"soon\"\n", &[], "dns.refresh:"),
            ("[dns]\ntimeout = \"0s\"\n", &[], "dns.timeout:"),
            ("[dns]\nattempts = 0\n", &[], "dns.attempts:"),
        ] {
            let err = merged(flags, toml).unwrap_err().to_string();
            assert!(err.starts_with(key), "{toml:?} {flags:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
