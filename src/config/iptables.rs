//! `ringside iptables print | install | remove`: the flags of the rules that
//! send a pod's TCP through ringside, named as Linkerd's proxy-init names
//! them so that its users recognise them, and their validation.

use std::net::IpAddr;

use clap::ValueEnum;

use super::ConfigError;

/// What `ringside iptables` does with the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IptablesAction {
    /// Show the exact iptables-restore input that install applies.
    Print,
    /// Apply the rules; a second install changes nothing.
    Install,
    /// Delete ringside's chains and the jumps into them, nothing else.
    Remove,
}

/// Which iptables backend gets the rules, as proxy-init's `--iptables-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IptablesMode {
    Nft,
    Legacy,
}

#[derive(Debug, Clone, clap::Args)]
pub struct IptablesArgs {
    pub action: IptablesAction,

    /// Port of ringside's inbound listener, where inbound TCP is
    /// redirected [default: the port of `inbound.listen` when the config
    /// has one, else 4143]
    #[arg(long, env = "RINGSIDE_INBOUND_PORT")]
    pub inbound_port: Option<u16>,

    /// Port of ringside's outbound listener, where outbound TCP is
    /// redirected [default: the port of `outbound.listen` when the config
    /// has one, else 4140]
    #[arg(long, env = "RINGSIDE_OUTBOUND_PORT")]
    pub outbound_port: Option<u16>,

    /// Comma-separated inbound ports or ranges (`9000-9100`) that reach the
    /// application directly, besides ringside's own (inbound, outbound and
    /// admin ports), which are always skipped.
    #[arg(long, env = "RINGSIDE_SKIP_INBOUND_PORTS", default_value = "")]
    pub skip_inbound_ports: String,

    /// Comma-separated destination ports or ranges (`9000-9100`) that
    /// outbound TCP reaches directly.
    #[arg(long, env = "RINGSIDE_SKIP_OUTBOUND_PORTS", default_value = "")]
    pub skip_outbound_ports: String,

    /// Comma-separated destination networks (10.0.0.0/8, fd00::/8 or a
    /// single address) that outbound TCP reaches directly.
    #[arg(long, env = "RINGSIDE_SKIP_OUTBOUND_CIDRS", default_value = "")]
    pub skip_outbound_cidrs: String,

    /// User id ringside runs as: its own connections are never redirected
    /// (print and install need this or --proxy-gid).
    #[arg(long, env = "RINGSIDE_PROXY_UID")]
    pub proxy_uid: Option<u32>,

    /// Group id ringside runs as, exempted like --proxy-uid (either or
    /// both may be given).
    #[arg(long, env = "RINGSIDE_PROXY_GID")]
    pub proxy_gid: Option<u32>,

    /// iptables backend: nft or legacy; falls back to plain
    /// iptables-restore when the mode's own binary is absent.
    #[arg(long, env = "RINGSIDE_IPTABLES_MODE", value_enum, default_value_t = IptablesMode::Nft)]
    pub iptables_mode: IptablesMode,

    /// Leave IPv6 alone, for a pod or host without IPv6 addresses.
    /// Without it any IPv6 failure (no ip6tables, no IPv6 nat table, a
    /// failed save or restore) is an error.
    #[arg(long, env = "RINGSIDE_NO_IPV6")]
    pub no_ipv6: bool,
}

/// A destination network: an address and how many leading bits count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// A run of destination ports, `first..=last` (one port when equal), as
/// iptables' multiport match takes them (`9000:9100`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn one(port: u16) -> PortRange {
        PortRange {
            first: port,
            last: port,
        }
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.first == self.last {
            true => write!(f, "{}", self.first),
            false => write!(f, "{}:{}", self.first, self.last),
        }
    }
}

/// The ports of ringside's own listeners, which the rules redirect to and
/// never redirect away from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnPorts {
    /// The admin server's, so that probes and scrapes reach ringside.
    pub admin: u16,
    /// The configured transparent listeners' (`inbound.listen`,
    /// `outbound.listen`), the defaults of `--inbound-port` and
    /// `--outbound-port`, so that the rules and the listeners agree.
    pub inbound: Option<u16>,
    pub outbound: Option<u16>,
}

/// The validated rule settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IptablesConfig {
    pub inbound_port: u16,
    pub outbound_port: u16,
    /// The skip-inbound ports with ringside's own added, sorted, overlaps
    /// merged.
    pub skip_inbound_ports: Vec<PortRange>,
    pub skip_outbound_ports: Vec<PortRange>,
    pub skip_outbound_cidrs: Vec<Cidr>,
    /// At least one of the two for `install` and `print`; `remove` writes
    /// no rule that needs them.
    pub proxy_uid: Option<u32>,
    pub proxy_gid: Option<u32>,
    pub mode: IptablesMode,
    /// Whether the IPv6 table gets the rules too (`--no-ipv6` unsets it):
    /// a dual-stack pod without them is open over IPv6, around the proxy
    /// and its authorization.
    pub ipv6: bool,
}

/// Linkerd's ports, when neither a flag nor the config names one.
const DEFAULT_INBOUND_PORT: u16 = 4143;
const DEFAULT_OUTBOUND_PORT: u16 = 4140;

impl IptablesArgs {
    /// Validates the flags against ringside's `own` ports.
    pub fn resolve(&self, own: OwnPorts) -> Result<IptablesConfig, ConfigError> {
        let inbound_port = listener_port(
            "--inbound-port",
            self.inbound_port,
            own.inbound,
            DEFAULT_INBOUND_PORT,
        )?;
        let outbound_port = listener_port(
            "--outbound-port",
            self.outbound_port,
            own.outbound,
            DEFAULT_OUTBOUND_PORT,
        )?;
        let exempt = self.proxy_uid.is_some() || self.proxy_gid.is_some();
        if !exempt && self.action != IptablesAction::Remove {
            return Err(ConfigError::invalid(
                "--proxy-uid",
                "required (or --proxy-gid): the user id ringside runs as, whose connections are never redirected",
            ));
        }
        let mut skip_inbound_ports =
            parse_port_ranges("--skip-inbound-ports", &self.skip_inbound_ports)?;
        skip_inbound_ports.extend([inbound_port, outbound_port, own.admin].map(PortRange::one));
        Ok(IptablesConfig {
            inbound_port,
            outbound_port,
            skip_inbound_ports: merged(skip_inbound_ports),
            skip_outbound_ports: merged(parse_port_ranges(
                "--skip-outbound-ports",
                &self.skip_outbound_ports,
            )?),
            skip_outbound_cidrs: parse_cidrs("--skip-outbound-cidrs", &self.skip_outbound_cidrs)?,
            proxy_uid: self.proxy_uid,
            proxy_gid: self.proxy_gid,
            mode: self.iptables_mode,
            ipv6: !self.no_ipv6,
        })
    }
}

/// A listener's port: the flag's, else the configured listener's, else
/// Linkerd's. A port-0 listener has no port the rules could name.
fn listener_port(
    key: &str,
    flag: Option<u16>,
    configured: Option<u16>,
    default: u16,
) -> Result<u16, ConfigError> {
    match flag.or(configured).unwrap_or(default) {
        0 if flag.is_none() => Err(ConfigError::invalid(
            key,
            "the configured listener's port is 0 (chosen at start): give the port",
        )),
        0 => Err(ConfigError::invalid(key, "0 is not a port")),
        port => Ok(port),
    }
}

/// `25,9000-9100`: ports and inclusive ranges, as proxy-init takes them.
pub(super) fn parse_port_ranges(key: &str, list: &str) -> Result<Vec<PortRange>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|item| {
            let bad =
                || ConfigError::invalid(key, format!("{item:?} is not a port or a range of ports"));
            let port = |text: &str| text.trim().parse::<u16>().ok().filter(|p| *p > 0);
            let (first, last) = match item.split_once('-') {
                Some((first, last)) => (port(first), port(last)),
                None => (port(item), port(item)),
            };
            match (first, last) {
                (Some(first), Some(last)) if first <= last => Ok(PortRange { first, last }),
                _ => Err(bad()),
            }
        })
        .collect()
}

/// Sorted, with overlapping and adjacent ranges joined.
fn merged(mut ranges: Vec<PortRange>) -> Vec<PortRange> {
    ranges.sort_unstable();
    let mut out: Vec<PortRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match out.last_mut() {
            Some(last) if u32::from(range.first) <= u32::from(last.last) + 1 => {
                last.last = last.last.max(range.last);
            }
            _ => out.push(range),
        }
    }
    out
}

/// `10.0.0.0/8,fd00::/8,192.0.2.7`; a bare address is a network of one.
/// Errors under `key`.
pub(super) fn parse_cidrs(key: &str, list: &str) -> Result<Vec<Cidr>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| parse_cidr(key, c))
        .collect()
}

/// `10.0.0.0/8` or a bare address (a network of one), errors under `key`.
pub(super) fn parse_cidr(key: &str, text: &str) -> Result<Cidr, ConfigError> {
    let bad = || ConfigError::invalid(key, format!("{text:?} is not an address or CIDR"));
    let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        "" => max,
        bits => bits.parse().ok().filter(|b| *b <= max).ok_or_else(bad)?,
    };
    Ok(Cidr { addr, prefix })
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts
    /// as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> (u128, u8) {
            match ip.to_canonical() {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let ((net, width), (addr, addr_width)) = (bits(self.addr), bits(ip));
        if width != addr_width {
            return false;
        }
        // An IPv4 address sits in the top 32 bits, so one mask serves both.
        let mask = match u32::from(self.prefix) {
            0 => 0,
            prefix => u128::MAX << (128 - prefix),
        };
        net & mask == addr & mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: IptablesArgs,
    }

    fn resolve(flags: &[&str]) -> Result<IptablesConfig, ConfigError> {
        let args = Cli::try_parse_from(std::iter::once("ringside").chain(flags.iter().copied()))
            .expect("flags parse")
            .args;
        let own = OwnPorts {
            admin: 4191,
            inbound: None,
            outbound: None,
        };
        args.resolve(own)
    }

    fn ports(ranges: &[PortRange]) -> Vec<String> {
        ranges.iter().map(PortRange::to_string).collect()
    }

    #[test]
    fn own_ports_are_always_skipped_inbound() {
        let config = resolve(&[
            "install",
            "--proxy-uid",
            "2102",
            "--skip-inbound-ports",
            "9999,4191",
        ])
        .unwrap();
        assert_eq!(
            ports(&config.skip_inbound_ports),
            ["4140", "4143", "4191", "9999"]
        );
        assert_eq!(config.mode, IptablesMode::Nft);
        assert!(config.ipv6, "both families unless --no-ipv6");
        assert!(!resolve(&["remove", "--no-ipv6"]).unwrap().ipv6);
    }

    #[test]
    fn install_and_print_need_the_proxy_uid_and_remove_does_not() {
        for action in ["install", "print"] {
            let err = resolve(&[action]).unwrap_err().to_string();
            assert!(err.starts_with("--proxy-uid: required"), "{err}");
        }
        assert_eq!(resolve(&["remove"]).unwrap().proxy_uid, None);
        let by_group = resolve(&["install", "--proxy-gid", "4140"]).unwrap();
        assert_eq!((by_group.proxy_uid, by_group.proxy_gid), (None, Some(4140)));
    }

    #[test]
    fn ranges_are_merged_and_bad_ones_name_the_key() {
        let config = resolve(&[
            "print",
            "--proxy-uid",
            "1",
            "--skip-outbound-ports",
            "9000-9100, 25, 9050-9200,9201,26",
        ])
        .unwrap();
        assert_eq!(ports(&config.skip_outbound_ports), ["25:26", "9000:9201"]);
        for bad in ["9100-9000", "0", "1-", "70000", "a-b"] {
            let flags = ["print", "--proxy-uid", "1", "--skip-inbound-ports", bad];
            let err = resolve(&flags).unwrap_err().to_string();
            assert!(err.starts_with("--skip-inbound-ports: "), "{bad}: {err}");
        }
    }

    #[test]
    fn listener_ports_come_from_the_flag_then_the_config_then_linkerd() {
        let args = |flags: &[&str]| {
            let all = ["ringside", "print", "--proxy-uid", "1"].into_iter();
            Cli::try_parse_from(all.chain(flags.iter().copied()))
                .unwrap()
                .args
        };
        let configured = OwnPorts {
            admin: 4191,
            inbound: Some(14143),
            outbound: Some(0),
        };
        let err = args(&[]).resolve(configured).unwrap_err().to_string();
        assert!(err.starts_with("--outbound-port: the configured"), "{err}");
        let config = args(&["--outbound-port", "14140"])
            .resolve(configured)
            .unwrap();
        assert_eq!((config.inbound_port, config.outbound_port), (14143, 14140));
        assert_eq!(
            ports(&config.skip_inbound_ports),
            ["4191", "14140", "14143"]
        );
        let defaults = resolve(&["print", "--proxy-uid", "1"]).unwrap();
        assert_eq!(
            (defaults.inbound_port, defaults.outbound_port),
            (4143, 4140)
        );
    }

    #[test]
    fn cidrs_hold_the_addresses_of_their_family() {
        let net = |text: &str| parse_cidr("k", text).unwrap();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(net("198.18.0.0/24").contains(ip("198.18.0.7")));
        assert!(net("198.18.0.0/24").contains(ip("::ffff:198.18.0.7")));
        assert!(!net("198.18.0.0/24").contains(ip("198.18.1.7")));
        assert!(net("198.18.0.2").contains(ip("198.18.0.2")));
        assert!(!net("198.18.0.2").contains(ip("198.18.0.3")));
        assert!(net("0.0.0.0/0").contains(ip("10.1.2.3")));
        assert!(!net("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert!(net("2001:db8::/64").contains(ip("2001:db8::2")));
        assert!(!net("2001:db8::/64").contains(ip("2001:db9::2")));
    }

    #[test]
    fn cidrs_take_bare_addresses_and_name_the_key_when_bad() {
        let config = resolve(&[
            "print",
            "--proxy-uid",
            "1",
            "--skip-outbound-cidrs",
            "10.0.0.0/8, fd00::/8,192.0.2.7",
        ])
        .unwrap();
        let shown: Vec<String> = config
            .skip_outbound_cidrs
            .iter()
            .map(|c| format!("{}/{}", c.addr, c.prefix))
            .collect();
        assert_eq!(shown, ["10.0.0.0/8", "fd00::/8", "192.0.2.7/32"]);
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x"] {
            let err =
                resolve(&["print", "--proxy-uid", "1", "--skip-outbound-cidrs", bad]).unwrap_err();
            assert!(
                err.to_string().starts_with("--skip-outbound-cidrs: "),
                "{err}"
            );
        }
        let err =
            resolve(&["print", "--proxy-uid", "1", "--skip-outbound-ports", "80,x"]).unwrap_err();
        assert!(
            err.to_string().starts_with("--skip-outbound-ports: "),
            "{err}"
        );
    }
}
