//! `ringside iptables print | install | remove`: the flags of the rules that
//! send a pod's TCP through ringside, named as Linkerd's proxy-init names
//! them so that its users recognise them, and their validation.

use std::net::IpAddr;

use clap::ValueEnum;

use super::merge::parse_port_list;
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

#[derive(Debug, clap::Args)]
pub struct IptablesArgs {
    pub action: IptablesAction,

    /// Port of ringside's inbound listener, where inbound TCP is redirected.
    #[arg(long, env = "RINGSIDE_INBOUND_PORT", default_value_t = 4143)]
    pub inbound_port: u16,

    /// Port of ringside's outbound listener, where outbound TCP is
    /// redirected.
    #[arg(long, env = "RINGSIDE_OUTBOUND_PORT", default_value_t = 4140)]
    pub outbound_port: u16,

    /// Comma-separated inbound ports that reach the application directly,
    /// besides ringside's own (inbound, outbound and admin ports), which
    /// are always skipped.
    #[arg(long, env = "RINGSIDE_SKIP_INBOUND_PORTS", default_value = "")]
    pub skip_inbound_ports: String,

    /// Comma-separated destination ports that outbound TCP reaches
    /// directly.
    #[arg(long, env = "RINGSIDE_SKIP_OUTBOUND_PORTS", default_value = "")]
    pub skip_outbound_ports: String,

    /// Comma-separated destination networks (10.0.0.0/8, fd00::/8 or a
    /// single address) that outbound TCP reaches directly.
    #[arg(long, env = "RINGSIDE_SKIP_OUTBOUND_CIDRS", default_value = "")]
    pub skip_outbound_cidrs: String,

    /// User id ringside runs as: its own connections are never redirected
    /// (required by print and install).
    #[arg(long, env = "RINGSIDE_PROXY_UID")]
    pub proxy_uid: Option<u32>,

    /// iptables backend: nft or legacy; falls back to plain
    /// iptables-restore when the mode's own binary is absent.
    #[arg(long, env = "RINGSIDE_IPTABLES_MODE", value_enum, default_value_t = IptablesMode::Nft)]
    pub iptables_mode: IptablesMode,
}

/// A destination network: an address and how many leading bits count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// The validated rule settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IptablesConfig {
    pub inbound_port: u16,
    pub outbound_port: u16,
    /// The skip-inbound ports with ringside's own added, sorted, once each.
    pub skip_inbound_ports: Vec<u16>,
    pub skip_outbound_ports: Vec<u16>,
    pub skip_outbound_cidrs: Vec<Cidr>,
    /// `None` only for `remove`, which writes no rule that needs it.
    pub proxy_uid: Option<u32>,
    pub mode: IptablesMode,
}

impl IptablesArgs {
    /// Validates the flags; `admin_port` is skipped inbound beside the
    /// listener ports, so that probes and scrapes reach ringside itself.
    pub fn resolve(&self, admin_port: u16) -> Result<IptablesConfig, ConfigError> {
        for (key, port) in [
            ("--inbound-port", self.inbound_port),
            ("--outbound-port", self.outbound_port),
        ] {
            if port == 0 {
                return Err(ConfigError::invalid(key, "0 is not a port"));
            }
        }
        if self.proxy_uid.is_none() && self.action != IptablesAction::Remove {
            return Err(ConfigError::invalid(
                "--proxy-uid",
                "required: the user id ringside runs as, whose connections are never redirected",
            ));
        }
        let mut skip_inbound_ports =
            parse_port_list("--skip-inbound-ports", &self.skip_inbound_ports)?;
        skip_inbound_ports.extend([self.inbound_port, self.outbound_port, admin_port]);
        skip_inbound_ports.sort_unstable();
        skip_inbound_ports.dedup();
        Ok(IptablesConfig {
            inbound_port: self.inbound_port,
            outbound_port: self.outbound_port,
            skip_inbound_ports,
            skip_outbound_ports: parse_port_list(
                "--skip-outbound-ports",
                &self.skip_outbound_ports,
            )?,
            skip_outbound_cidrs: parse_cidrs(&self.skip_outbound_cidrs)?,
            proxy_uid: self.proxy_uid,
            mode: self.iptables_mode,
        })
    }
}

/// `10.0.0.0/8,fd00::/8,192.0.2.7`; a bare address is a network of one.
fn parse_cidrs(list: &str) -> Result<Vec<Cidr>, ConfigError> {
    let key = "--skip-outbound-cidrs";
    list.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            let bad = || ConfigError::invalid(key, format!("{c:?} is not an address or CIDR"));
            let (addr, prefix) = c.split_once('/').unwrap_or((c, ""));
            let addr: IpAddr = addr.parse().map_err(|_| bad())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                "" => max,
                bits => bits.parse().ok().filter(|b| *b <= max).ok_or_else(bad)?,
            };
            Ok(Cidr { addr, prefix })
        })
        .collect()
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
        args.resolve(4191)
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
        assert_eq!(config.skip_inbound_ports, vec![4140, 4143, 4191, 9999]);
        assert_eq!(config.mode, IptablesMode::Nft);
    }

    #[test]
    fn install_and_print_need_the_proxy_uid_and_remove_does_not() {
        for action in ["install", "print"] {
            let err = resolve(&[action]).unwrap_err().to_string();
            assert!(err.starts_with("--proxy-uid: required"), "{err}");
        }
        assert_eq!(resolve(&["remove"]).unwrap().proxy_uid, None);
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
