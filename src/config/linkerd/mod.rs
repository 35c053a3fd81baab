//! Linkerd mode: ringside configured by the environment Linkerd's proxy
//! injector writes (linkerd2's `charts/partials/templates/_proxy.tpl`),
//! read as linkerd2-proxy reads it (`linkerd/app/src/env.rs`), so that an
//! injected pod runs ringside in place of linkerd2-proxy.
//!
//! The mode is chosen by `LINKERD2_PROXY_IDENTITY_DIR` with no argument
//! on the command line: Linkerd's identity wrapper writes `key.p8` and
//! `csr.der` there and then starts the proxy with no argument, and no
//! other use of ringside sets it. Any argument means the usual mode, where
//! `LINKERD2_PROXY_*` variables mean nothing.
//!
//! The variables map onto the one `Config` every mode makes: the
//! transparent listeners, the admin address and its `/shutdown`, the
//! opaque ports, the shard count, the shutdown grace, the inbound default
//! policy. What only the
//! control plane uses (its addresses and names, the identity's files and
//! token, the destination context, the workload) is kept, validated, in
//! `LinkerdConfig`. `RINGSIDE_*` variables still set what Linkerd has no
//! variable for (forward mode, pinning, limits), under Linkerd's own.
//! Every other `LINKERD2_PROXY_*` variable is named once, at start, as
//! ignored (`LinkerdConfig::ignored`).

mod values;

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::file::FileConfig;
use super::iptables::{Cidr, PortRange};
use super::transparent::{check_listens, ForwardTo, Transparent};
use super::{Args, Authorize, Config, ConfigError, Direction, LogFormat};

/// The variable that selects Linkerd mode (with no argument given).
pub const MODE_VARIABLE: &str = "LINKERD2_PROXY_IDENTITY_DIR";

const PREFIX: &str = "LINKERD2_PROXY_";

/// The variables ringside reads in Linkerd mode, without their prefix;
/// every other `LINKERD2_PROXY_*` one is reported as ignored.
pub const HONOURED: [&str; 32] = [
    "INBOUND_LISTEN_ADDR",
    "OUTBOUND_LISTEN_ADDRS",
    "OUTBOUND_LISTEN_ADDR",
    "ADMIN_LISTEN_ADDR",
    "CONTROL_LISTEN_ADDR",
    "IDENTITY_DIR",
    "IDENTITY_TOKEN_FILE",
    "IDENTITY_TRUST_ANCHORS",
    "IDENTITY_LOCAL_NAME",
    "IDENTITY_SERVER_ID",
    "IDENTITY_SERVER_NAME",
    "IDENTITY_SVC_ADDR",
    "IDENTITY_SVC_NAME",
    "IDENTITY_MIN_REFRESH",
    "IDENTITY_MAX_REFRESH",
    "DESTINATION_SVC_ADDR",
    "DESTINATION_SVC_NAME",
    "DESTINATION_CONTEXT",
    "DESTINATION_PROFILE_NETWORKS",
    "POLICY_SVC_ADDR",
    "POLICY_SVC_NAME",
    "POLICY_WORKLOAD",
    "POLICY_CLUSTER_NETWORKS",
    "INBOUND_DEFAULT_POLICY",
    "INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION",
    "INBOUND_PORTS",
    "INBOUND_IPS",
    "LOG",
    "LOG_FORMAT",
    "CORES",
    "SHUTDOWN_GRACE_PERIOD",
    "SHUTDOWN_ENDPOINT_ENABLED",
];

/// linkerd2-proxy's defaults (`env.rs`), where they differ from ringside's.
const DEFAULT_INBOUND_LISTEN: &str = "0.0.0.0:4143";
const DEFAULT_OUTBOUND_LISTEN: &str = "127.0.0.1:4140";
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(120);
const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(10);
const DEFAULT_MAX_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);

/// What only the control plane uses, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkerdConfig {
    pub identity: LinkerdIdentity,
    /// `LINKERD2_PROXY_DESTINATION_*`: endpoints and profiles.
    pub destination: Destination,
    /// `LINKERD2_PROXY_POLICY_*`: inbound and outbound policies.
    pub policy: Policy,
    /// `LINKERD2_PROXY_INBOUND_PORTS`: the pod's container ports, whose
    /// inbound policies Linkerd discovers at start.
    pub inbound_ports: Vec<PortRange>,
    /// `LINKERD2_PROXY_INBOUND_IPS`: the pod's own addresses, the only
    /// targets inbound connections may have.
    pub inbound_ips: Vec<IpAddr>,
    /// `LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS`: what `cluster-*`
    /// policies call the cluster.
    pub cluster_networks: Vec<Cidr>,
    /// `LINKERD2_PROXY_LOG`, its `linkerd…` targets read as ringside's.
    pub log_filter: Option<String>,
    /// `LINKERD2_PROXY_*` variables given that ringside does not read,
    /// sorted, for the one line that names them at start.
    pub ignored: Vec<String>,
}

/// Linkerd's identity: the wrapper's files, the token, the anchors, and
/// the identity service (`Certify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkerdIdentity {
    /// Where the wrapper wrote `key.p8` (PKCS#8 DER) and `csr.der`.
    pub dir: PathBuf,
    /// The service account token, read again for every request: Kubernetes
    /// rotates projected tokens.
    pub token_file: PathBuf,
    /// PEM text (the variable holds the certificates, not a path).
    pub trust_anchors_pem: String,
    /// Our identity: the name we ask for, answer as SNI, and present.
    pub local_name: String,
    pub svc: ControlAddr,
    /// Renewal is due at 70% of what is left, within these bounds.
    pub min_refresh: Duration,
    pub max_refresh: Duration,
}

/// The destination service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub svc: ControlAddr,
    /// `LINKERD2_PROXY_DESTINATION_CONTEXT`, sent as it is with every
    /// lookup (a JSON object naming the pod).
    pub context: String,
    /// Addresses whose profiles are looked up (`GetProfile`).
    pub profile_networks: Vec<Cidr>,
}

/// The policy service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub svc: ControlAddr,
    /// `LINKERD2_PROXY_POLICY_WORKLOAD`, sent as it is (JSON).
    pub workload: String,
    /// `LINKERD2_PROXY_INBOUND_DEFAULT_POLICY`'s name (checked), the
    /// fallback of every inbound port until the policy service answers.
    pub inbound_default: String,
}

/// Where a control-plane service is, and how it is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlAddr {
    pub host: ControlHost,
    pub port: u16,
    /// The identity its server presents, which mTLS names (SNI and the
    /// verified SAN); `None` on loopback, which is plaintext.
    pub server_name: Option<String>,
}

/// An IP, or a name that resolves to every replica (a headless service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlHost {
    Ip(IpAddr),
    Name(String),
}

impl fmt::Display for ControlAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            ControlHost::Ip(ip) => write!(f, "{}", SocketAddr::new(*ip, self.port)),
            ControlHost::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

/// Whether this process runs in Linkerd mode: no argument, and
/// `MODE_VARIABLE` set. The wrapper execs with an empty argv (Go's
/// `syscall.Exec(path, []string{}, env)`): no argv[0] at all before Linux
/// 5.18, one empty string since.
pub fn selected() -> bool {
    std::env::args_os().len() <= 1 && std::env::var_os(MODE_VARIABLE).is_some()
}

impl LinkerdConfig {
    /// The line printed at start: the mode, who we are, whom we ask.
    pub fn banner(&self) -> String {
        let mode = "linkerd mode:";
        let identity = &self.identity;
        format!(
            "{mode} identity {} from {}, destination {}, policy {}",
            identity.local_name, identity.svc, self.destination.svc, self.policy.svc
        )
    }
}

impl Config {
    /// The configuration of Linkerd mode, from the environment `vars`
    /// (all of it; only `LINKERD2_PROXY_*` and `RINGSIDE_*` are read).
    pub fn from_linkerd_env(
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<Config, ConfigError> {
        let env = Env::collect(vars)?;
        let mut config = Config::merge(&base_args()?, FileConfig::default())?;
        let linkerd = env.linkerd()?;
        if let Some(admin) = env.parsed("ADMIN_LISTEN_ADDR", values::socket_addr)? {
            config.admin_addr = admin;
        }
        config.transparent = env.listeners()?;
        check_listens(&[], &config.transparent)?;
        if let Some(shards) = env.parsed("CORES", values::count)? {
            config.shards = Some(shards);
        }
        if let Some(format) = env.get("LOG_FORMAT") {
            config.log_format = match format.trim() {
                "plain" | "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(env.invalid(
                        "LOG_FORMAT",
                        format!("expected \"plain\" or \"json\", got {other:?}"),
                    ))
                }
            };
        }
        // Unset: ringside's own default (on, from loopback), where
        // linkerd2-proxy's is off; the injector always sets it.
        if let Some(enabled) = env.parsed("SHUTDOWN_ENDPOINT_ENABLED", values::boolean)? {
            config.admin_shutdown = enabled;
        }
        config.timeouts.shutdown_grace = env
            .parsed("SHUTDOWN_GRACE_PERIOD", values::duration)?
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE);
        if let Some(ranges) = env.parsed(
            "INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION",
            values::port_ranges,
        )? {
            config.detect.opaque_ports = ranges.iter().flat_map(|r| r.first..=r.last).collect();
        }
        config.inbound_policy.default = env.default_policy(&linkerd.cluster_networks)?;
        config.inbound_policy.ports.clear();
        config.routes.clear();
        config.mesh_peers.clear();
        config.identity = None;
        config.linkerd = Some(linkerd);
        Ok(config)
    }
}

/// ringside's own defaults, under any `RINGSIDE_*` variables.
fn base_args() -> Result<Args, ConfigError> {
    Args::try_parse_from(["ringside"]).map_err(|err| {
        ConfigError::invalid("RINGSIDE_*", err.to_string().trim().replace('\n', " "))
    })
}

/// The `LINKERD2_PROXY_*` variables, by their name without the prefix.
struct Env {
    vars: std::collections::BTreeMap<String, String>,
}

impl Env {
    fn collect(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Result<Env, ConfigError> {
        let mut map = std::collections::BTreeMap::new();
        for (name, value) in vars {
            let Some(name) = name.to_str() else { continue };
            let Some(short) = name.strip_prefix(PREFIX) else {
                continue;
            };
            let value = value
                .into_string()
                .map_err(|_| ConfigError::invalid(name, "is not UTF-8"))?;
            map.insert(short.to_string(), value);
        }
        Ok(Env { vars: map })
    }

    fn get(&self, short: &str) -> Option<&str> {
        self.vars.get(short).map(String::as_str)
    }

    fn invalid(&self, short: &str, message: impl fmt::Display) -> ConfigError {
        ConfigError::invalid(format!("{PREFIX}{short}"), message)
    }

    fn required(&self, short: &str) -> Result<&str, ConfigError> {
        match self.get(short) {
            Some(value) if !value.trim().is_empty() => Ok(value),
            _ => Err(self.invalid(short, "required in Linkerd mode")),
        }
    }

    /// The variable through `parse`, which names it in its error.
    fn parsed<T>(
        &self,
        short: &str,
        parse: impl FnOnce(&str, &str) -> Result<T, ConfigError>,
    ) -> Result<Option<T>, ConfigError> {
        let key = format!("{PREFIX}{short}");
        self.get(short).map(|value| parse(&key, value)).transpose()
    }

    fn control(&self, base: &str) -> Result<Option<ControlAddr>, ConfigError> {
        values::control_addr(
            &format!("{PREFIX}{base}"),
            self.get(&format!("{base}_ADDR")),
            self.get(&format!("{base}_NAME")),
        )
    }

    fn required_control(&self, base: &str) -> Result<ControlAddr, ConfigError> {
        self.control(base)?
            .ok_or_else(|| self.invalid(&format!("{base}_ADDR"), "required in Linkerd mode"))
    }

    fn linkerd(&self) -> Result<LinkerdConfig, ConfigError> {
        let identity = self.identity()?;
        let destination = Destination {
            svc: self.required_control("DESTINATION_SVC")?,
            context: self
                .get("DESTINATION_CONTEXT")
                .unwrap_or_default()
                .to_string(),
            profile_networks: self
                .parsed("DESTINATION_PROFILE_NETWORKS", values::networks)?
                .unwrap_or_default(),
        };
        let policy = Policy {
            svc: self.required_control("POLICY_SVC")?,
            workload: values::json_object(
                &format!("{PREFIX}POLICY_WORKLOAD"),
                self.required("POLICY_WORKLOAD")?,
            )?,
            inbound_default: self
                .get("INBOUND_DEFAULT_POLICY")
                .map_or("all-unauthenticated", str::trim)
                .to_string(),
        };
        self.parsed("CONTROL_LISTEN_ADDR", values::socket_addr)?;
        Ok(LinkerdConfig {
            identity,
            destination,
            policy,
            inbound_ports: self
                .parsed("INBOUND_PORTS", values::port_ranges)?
                .unwrap_or_default(),
            inbound_ips: self.parsed("INBOUND_IPS", values::ips)?.unwrap_or_default(),
            cluster_networks: self
                .parsed("POLICY_CLUSTER_NETWORKS", values::networks)?
                .unwrap_or_default(),
            log_filter: self.parsed("LOG", values::log_filter)?,
            ignored: self.ignored(),
        })
    }

    fn identity(&self) -> Result<LinkerdIdentity, ConfigError> {
        let dir = PathBuf::from(self.required("IDENTITY_DIR")?);
        let token_file = PathBuf::from(self.required("IDENTITY_TOKEN_FILE")?);
        let trust_anchors_pem = self.required("IDENTITY_TRUST_ANCHORS")?.to_string();
        use rustls_pki_types::pem::PemObject;
        let anchors =
            rustls_pki_types::CertificateDer::pem_slice_iter(trust_anchors_pem.as_bytes());
        match anchors.collect::<Result<Vec<_>, _>>() {
            Ok(certs) if !certs.is_empty() => {}
            Ok(_) => return Err(self.invalid("IDENTITY_TRUST_ANCHORS", "holds no PEM certificate")),
            Err(err) => {
                return Err(self.invalid("IDENTITY_TRUST_ANCHORS", format!("bad PEM: {err}")))
            }
        }
        let local_name = self.local_name()?;
        let svc = self.required_control("IDENTITY_SVC")?;
        let refresh = |short, default| -> Result<Duration, ConfigError> {
            Ok(self.parsed(short, values::duration)?.unwrap_or(default))
        };
        let min_refresh = refresh("IDENTITY_MIN_REFRESH", DEFAULT_MIN_REFRESH)?;
        let max_refresh = refresh("IDENTITY_MAX_REFRESH", DEFAULT_MAX_REFRESH)?;
        if min_refresh.is_zero() || min_refresh > max_refresh {
            return Err(self.invalid(
                "IDENTITY_MIN_REFRESH",
                "must be above 0 and at most LINKERD2_PROXY_IDENTITY_MAX_REFRESH",
            ));
        }
        Ok(LinkerdIdentity {
            dir,
            token_file,
            trust_anchors_pem,
            local_name,
            svc,
            min_refresh,
            max_refresh,
        })
    }

    /// `LOCAL_NAME`, else `SERVER_ID` and `SERVER_NAME`, which Linkerd's
    /// own identity requires to be one DNS name (`env/identity.rs`).
    fn local_name(&self) -> Result<String, ConfigError> {
        if let Some(name) = self.parsed("IDENTITY_LOCAL_NAME", values::dns_name)? {
            return Ok(name);
        }
        let id = self.parsed("IDENTITY_SERVER_ID", values::dns_name)?;
        let name = self.parsed("IDENTITY_SERVER_NAME", values::dns_name)?;
        match (id, name) {
            (Some(id), Some(name)) if id == name => Ok(id),
            (Some(_), Some(_)) => Err(self.invalid(
                "IDENTITY_SERVER_ID",
                "must be the same DNS name as LINKERD2_PROXY_IDENTITY_SERVER_NAME",
            )),
            _ => Err(self.invalid("IDENTITY_LOCAL_NAME", "required in Linkerd mode")),
        }
    }

    /// Outbound, then inbound, as the usual mode orders them.
    fn listeners(&self) -> Result<Vec<Transparent>, ConfigError> {
        let outbound = match self.parsed("OUTBOUND_LISTEN_ADDRS", values::socket_addrs)? {
            Some(addrs) => {
                let key = "OUTBOUND_LISTEN_ADDRS";
                if let [first, second] = addrs[..] {
                    if twin(first) != Some(second) {
                        return Err(self.invalid(key, format!("ringside listens on the IPv6 twin of {first} itself; {second} is not it")));
                    }
                }
                addrs[0]
            }
            None => self
                .parsed("OUTBOUND_LISTEN_ADDR", values::socket_addr)?
                .unwrap_or_else(|| DEFAULT_OUTBOUND_LISTEN.parse().expect("a socket address")),
        };
        let inbound = self
            .parsed("INBOUND_LISTEN_ADDR", values::socket_addr)?
            .unwrap_or_else(|| DEFAULT_INBOUND_LISTEN.parse().expect("a socket address"));
        Ok(vec![
            Transparent {
                listen: outbound,
                direction: Direction::Outbound,
                forward_to: ForwardTo::Original,
            },
            Transparent {
                listen: inbound,
                direction: Direction::Inbound,
                forward_to: ForwardTo::Original,
            },
        ])
    }

    /// `LINKERD2_PROXY_INBOUND_DEFAULT_POLICY`, as linkerd2-proxy's
    /// `parse_default_policy`; the `cluster-*` ones need the cluster's
    /// networks. The policy controller's ports take it whole, networks
    /// included (`discovery::inbound::translate::default_policy`, from
    /// `Policy::inbound_default`); this `Authorize`, which looks at
    /// identities only, judges a port only when the control thread cannot
    /// be asked.
    fn default_policy(&self, cluster_networks: &[Cidr]) -> Result<Authorize, ConfigError> {
        let key = "INBOUND_DEFAULT_POLICY";
        let Some(value) = self.get(key) else {
            return Ok(Authorize::AllUnauthenticated);
        };
        let cluster = |policy| match cluster_networks.is_empty() {
            true => Err(self.invalid(
                key,
                format!("{value:?} needs LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS"),
            )),
            false => Ok(policy),
        };
        match value.trim() {
            "deny" => Ok(Authorize::Deny),
            "all-unauthenticated" | "audit" => Ok(Authorize::AllUnauthenticated),
            "all-authenticated" => Ok(Authorize::AllAuthenticated),
            "cluster-authenticated" => cluster(Authorize::AllAuthenticated),
            "cluster-unauthenticated" => cluster(Authorize::AllUnauthenticated),
            other => Err(self.invalid(key, format!("expected \"deny\", \"all-unauthenticated\", \"all-authenticated\", \"cluster-unauthenticated\", \"cluster-authenticated\" or \"audit\", got {other:?}"))),
        }
    }

    /// The variables given that ringside does not read, full names.
    fn ignored(&self) -> Vec<String> {
        let ignored = self
            .vars
            .keys()
            .filter(|name| !HONOURED.contains(&name.as_str()));
        ignored.map(|name| format!("{PREFIX}{name}")).collect()
    }
}

/// The IPv6 address ringside binds beside an IPv4 one itself
/// (`runtime/listener.rs`): `[::1]` for `127.0.0.1`, `[::]` for
/// `0.0.0.0`, same port.
fn twin(addr: SocketAddr) -> Option<SocketAddr> {
    let ip: IpAddr = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv6Addr::UNSPECIFIED.into(),
        IpAddr::V4(ip) if ip == std::net::Ipv4Addr::LOCALHOST => {
            std::net::Ipv6Addr::LOCALHOST.into()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, addr.port()))
}

#[cfg(test)]
mod tests;
