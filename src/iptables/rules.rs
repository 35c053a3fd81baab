//! The text of the rules, as iptables-restore reads it: what `install`
//! feeds, what `print` shows, and what `remove` takes away, worked out from
//! the `iptables-save -t nat` text of the tables as they are. Pure
//! functions over strings, so the exact rules are tested without root.

use std::fmt::Write;

use crate::config::{Cidr, IptablesConfig, PortRange};

/// The chain inbound TCP takes, jumped to from nat PREROUTING.
pub const INBOUND_CHAIN: &str = "RINGSIDE_PREROUTING";
/// The chain outbound TCP takes, jumped to from nat OUTPUT.
pub const OUTBOUND_CHAIN: &str = "RINGSIDE_OUTPUT";

/// Our chains and the built-in chain that jumps to each.
const JUMPS: [(&str, &str); 2] = [("PREROUTING", INBOUND_CHAIN), ("OUTPUT", OUTBOUND_CHAIN)];

/// iptables' multiport match takes at most 15 ports in one rule, a range
/// counting as two.
const MULTIPORT_MAX: usize = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        }
    }

    fn loopback(self) -> &'static str {
        match self {
            Family::Ipv4 => "127.0.0.0/8",
            Family::Ipv6 => "::1/128",
        }
    }

    fn holds(self, cidr: &Cidr) -> bool {
        cidr.addr.is_ipv4() == (self == Family::Ipv4)
    }
}

/// The iptables-restore input (for `--noflush`) that installs the rules.
/// Declaring our chains empties them if they exist, so the rules are always
/// the ones given here; a jump named in `present` (from `installed_jumps`)
/// is left out, so that a second install adds no second jump.
pub fn install(config: &IptablesConfig, family: Family, present: &[&str]) -> String {
    let mut out = String::from("*nat\n");
    for (_, chain) in JUMPS {
        writeln!(out, ":{chain} - [0:0]").unwrap();
    }

    // Inbound: ringside's own ports and the skipped ones reach their
    // listener as they are; all other TCP goes to the inbound listener.
    skip_ports(&mut out, INBOUND_CHAIN, &config.skip_inbound_ports);
    let inbound = config.inbound_port;
    writeln!(
        out,
        "-A {INBOUND_CHAIN} -p tcp -j REDIRECT --to-ports {inbound}"
    )
    .unwrap();

    // Outbound: ringside's own connections (its uid or gid), anything to
    // this host (out through lo, which also covers the pod's own
    // addresses), and the skipped ports and networks leave as they are.
    if let Some(uid) = config.proxy_uid {
        writeln!(
            out,
            "-A {OUTBOUND_CHAIN} -m owner --uid-owner {uid} -j RETURN"
        )
        .unwrap();
    }
    if let Some(gid) = config.proxy_gid {
        writeln!(
            out,
            "-A {OUTBOUND_CHAIN} -m owner --gid-owner {gid} -j RETURN"
        )
        .unwrap();
    }
    writeln!(out, "-A {OUTBOUND_CHAIN} -o lo -j RETURN").unwrap();
    writeln!(
        out,
        "-A {OUTBOUND_CHAIN} -d {} -j RETURN",
        family.loopback()
    )
    .unwrap();
    skip_ports(&mut out, OUTBOUND_CHAIN, &config.skip_outbound_ports);
    for cidr in config
        .skip_outbound_cidrs
        .iter()
        .filter(|c| family.holds(c))
    {
        writeln!(
            out,
            "-A {OUTBOUND_CHAIN} -d {}/{} -j RETURN",
            cidr.addr, cidr.prefix
        )
        .unwrap();
    }
    let outbound = config.outbound_port;
    writeln!(
        out,
        "-A {OUTBOUND_CHAIN} -p tcp -j REDIRECT --to-ports {outbound}"
    )
    .unwrap();

    for (builtin, chain) in JUMPS {
        if !present.contains(&chain) {
            writeln!(out, "-A {builtin} -j {chain}").unwrap();
        }
    }
    out.push_str("COMMIT\n");
    out
}

fn skip_ports(out: &mut String, chain: &str, ports: &[PortRange]) {
    let mut rest = ports;
    while !rest.is_empty() {
        // As many as fit in one multiport match.
        let mut weight = 0;
        let fit = rest
            .iter()
            .take_while(|range| {
                weight += if range.first == range.last { 1 } else { 2 };
                weight <= MULTIPORT_MAX
            })
            .count();
        let (group, after) = rest.split_at(fit);
        rest = after;
        let list: Vec<String> = group.iter().map(PortRange::to_string).collect();
        let list = list.join(",");
        writeln!(
            out,
            "-A {chain} -p tcp -m multiport --dports {list} -j RETURN"
        )
        .unwrap();
    }
}

/// Our chains whose jump from their built-in chain is in `saved` (the text
/// of `iptables-save -t nat`).
pub fn installed_jumps(saved: &str) -> Vec<&'static str> {
    JUMPS
        .iter()
        .filter(|(builtin, chain)| {
            let jump = format!("-A {builtin} -j {chain}");
            saved.lines().any(|line| line.trim_end() == jump)
        })
        .map(|(_, chain)| *chain)
        .collect()
}

/// The iptables-restore input (for `--noflush`) that deletes every jump
/// into our chains, then the chains; `None` when `saved` has neither.
pub fn remove(saved: &str) -> Option<String> {
    let ours = |name: &str| JUMPS.iter().any(|(_, chain)| *chain == name);
    let mut body = String::new();
    for line in saved.lines() {
        let Some(rule) = line.strip_prefix("-A ") else {
            continue;
        };
        let mut words = rule.split_whitespace();
        let chain = words.next().unwrap_or("");
        let target = words.skip_while(|w| *w != "-j").nth(1).unwrap_or("");
        if !ours(chain) && ours(target) {
            writeln!(body, "-D {rule}").unwrap();
        }
    }
    for (_, chain) in JUMPS {
        if saved
            .lines()
            .any(|line| line.starts_with(&format!(":{chain} ")))
        {
            writeln!(body, "-F {chain}\n-X {chain}").unwrap();
        }
    }
    (!body.is_empty()).then(|| format!("*nat\n{body}COMMIT\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IptablesMode;

    fn config() -> IptablesConfig {
        IptablesConfig {
            inbound_port: 4143,
            outbound_port: 4140,
            skip_inbound_ports: ports(&[4140, 4143, 4191, 9999]),
            skip_outbound_ports: ports(&[25, 443]),
            skip_outbound_cidrs: vec![
                Cidr {
                    addr: "10.0.0.0".parse().unwrap(),
                    prefix: 8,
                },
                Cidr {
                    addr: "fd00::".parse().unwrap(),
                    prefix: 8,
                },
            ],
            proxy_uid: Some(2102),
            proxy_gid: None,
            mode: IptablesMode::Nft,
            ipv6: true,
        }
    }

    fn ports(ports: &[u16]) -> Vec<PortRange> {
        ports.iter().copied().map(PortRange::one).collect()
    }

    #[test]
    fn ipv4_rules_are_exactly_these() {
        assert_eq!(
            install(&config(), Family::Ipv4, &[]),
            "*nat
:RINGSIDE_PREROUTING - [0:0]
:RINGSIDE_OUTPUT - [0:0]
-A RINGSIDE_PREROUTING -p tcp -m multiport --dports 4140,4143,4191,9999 -j RETURN
-A RINGSIDE_PREROUTING -p tcp -j REDIRECT --to-ports 4143
-A RINGSIDE_OUTPUT -m owner --uid-owner 2102 -j RETURN
-A RINGSIDE_OUTPUT -o lo -j RETURN
-A RINGSIDE_OUTPUT -d 127.0.0.0/8 -j RETURN
-A RINGSIDE_OUTPUT -p tcp -m multiport --dports 25,443 -j RETURN
-A RINGSIDE_OUTPUT -d 10.0.0.0/8 -j RETURN
-A RINGSIDE_OUTPUT -p tcp -j REDIRECT --to-ports 4140
-A PREROUTING -j RINGSIDE_PREROUTING
-A OUTPUT -j RINGSIDE_OUTPUT
COMMIT
"
        );
    }

    #[test]
    fn ipv6_rules_take_the_ipv6_loopback_and_networks_only() {
        let rules = install(&config(), Family::Ipv6, &[]);
        assert!(
            rules.contains("-A RINGSIDE_OUTPUT -d ::1/128 -j RETURN\n"),
            "{rules}"
        );
        assert!(
            rules.contains("-A RINGSIDE_OUTPUT -d fd00::/8 -j RETURN\n"),
            "{rules}"
        );
        assert!(!rules.contains("10.0.0.0"), "{rules}");
        assert!(!rules.contains("127.0.0.0"), "{rules}");
    }

    #[test]
    fn more_than_fifteen_ports_take_several_rules() {
        let mut config = config();
        config.skip_outbound_ports = ports(&(1..=16).collect::<Vec<_>>());
        let rules = install(&config, Family::Ipv4, &[]);
        let expected = "-A RINGSIDE_OUTPUT -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 -j RETURN\n\
                        -A RINGSIDE_OUTPUT -p tcp -m multiport --dports 16 -j RETURN\n";
        assert!(rules.contains(expected), "{rules}");
        // A range counts as two of the fifteen: 14 ports and one range
        // take two rules.
        let mut ranges = ports(&(1..=14).collect::<Vec<_>>());
        ranges.push(PortRange {
            first: 20,
            last: 30,
        });
        config.skip_outbound_ports = ranges;
        config.proxy_gid = Some(4140);
        let rules = install(&config, Family::Ipv4, &[]);
        let expected = "-A RINGSIDE_OUTPUT -m owner --gid-owner 4140 -j RETURN\n";
        assert!(rules.contains(expected), "{rules}");
        let expected = "--dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14 -j RETURN\n\
                        -A RINGSIDE_OUTPUT -p tcp -m multiport --dports 20:30 -j RETURN\n";
        assert!(rules.contains(expected), "{rules}");
    }

    const SAVED: &str = "# Generated by iptables-nft-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:RINGSIDE_OUTPUT - [0:0]
:RINGSIDE_PREROUTING - [0:0]
-A PREROUTING -j RINGSIDE_PREROUTING
-A OUTPUT -d 192.0.2.1/32 -j ACCEPT
-A OUTPUT -j RINGSIDE_OUTPUT
-A RINGSIDE_OUTPUT -o lo -j RETURN
-A RINGSIDE_PREROUTING -p tcp -j REDIRECT --to-ports 4143
COMMIT
";

    #[test]
    fn a_second_install_adds_no_second_jump() {
        let present = installed_jumps(SAVED);
        assert_eq!(present, [INBOUND_CHAIN, OUTBOUND_CHAIN]);
        let rules = install(&config(), Family::Ipv4, &present);
        assert!(!rules.contains("-A PREROUTING"), "{rules}");
        assert!(!rules.contains("-A OUTPUT"), "{rules}");
        assert!(rules.contains(":RINGSIDE_OUTPUT - [0:0]\n"), "{rules}");
    }

    #[test]
    fn remove_deletes_our_jumps_and_chains_only() {
        assert_eq!(
            remove(SAVED).unwrap(),
            "*nat
-D PREROUTING -j RINGSIDE_PREROUTING
-D OUTPUT -j RINGSIDE_OUTPUT
-F RINGSIDE_PREROUTING
-X RINGSIDE_PREROUTING
-F RINGSIDE_OUTPUT
-X RINGSIDE_OUTPUT
COMMIT
"
        );
        assert_eq!(
            remove("*nat\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j ACCEPT\nCOMMIT\n"),
            None
        );
    }
}
