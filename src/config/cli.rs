//! The command line. Every flag but `--config` and `--check` can also come
//! from a `RINGSIDE_*` environment variable; clap gives the flag precedence.
//! Values stay strings here so that validation in `Config::merge` can name
//! the key in its error, whichever layer the value came from. The
//! subcommands' own flags are here too (`ringside identity`'s below,
//! `ringside iptables`' in `iptables.rs`, `stat`'s and `top`'s in
//! `stat.rs`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::demo::DemoArgs;
use super::iptables::IptablesArgs;
use super::stat::{StatArgs, TopArgs};
use super::value::{check_name, check_spiffe_id};
use super::ConfigError;

#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "ringside",
    version,
    about = "A thread-per-core io_uring sidecar proxy"
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// TOML configuration file; flags and RINGSIDE_* variables override it.
    #[arg(long, env = "RINGSIDE_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// A listener and its upstreams: LISTEN=UPSTREAM[,UPSTREAM...]
    /// (repeatable; replaces the file's routes).
    #[arg(long, env = "RINGSIDE_ROUTE", value_delimiter = ';', global = true)]
    pub route: Vec<String>,

    /// Turns on the transparent outbound listener, where iptables OUTPUT
    /// rules redirect to [default when `[outbound]` is in the file:
    /// 127.0.0.1:4140].
    #[arg(long, env = "RINGSIDE_OUTBOUND_LISTEN", global = true)]
    pub outbound_listen: Option<String>,

    /// Turns on the transparent inbound listener, where iptables
    /// PREROUTING rules redirect to [default when `[inbound]` is in the
    /// file: 0.0.0.0:4143].
    #[arg(long, env = "RINGSIDE_INBOUND_LISTEN", global = true)]
    pub inbound_listen: Option<String>,

    /// Where inbound connections go: localhost (127.0.0.1:<original port>)
    /// or original (the original destination) [default: localhost].
    #[arg(long, env = "RINGSIDE_INBOUND_FORWARD_TO", global = true)]
    pub inbound_forward_to: Option<String>,

    /// A mesh peer: NETWORK=IDENTITY[@PORT] (repeatable; replaces the
    /// file's `[[mesh.peer]]`): connections to NETWORK go over mTLS to
    /// its proxy's PORT [default: 4143], which must present IDENTITY.
    #[arg(long, env = "RINGSIDE_MESH_PEER", value_delimiter = ';', global = true)]
    pub mesh_peer: Vec<String>,

    /// Who may connect to inbound ports no `[[inbound.authorize_port]]`
    /// names: deny, all-unauthenticated or all-authenticated [default:
    /// all-unauthenticated].
    #[arg(long, env = "RINGSIDE_INBOUND_AUTHORIZE", global = true)]
    pub inbound_authorize: Option<String>,

    /// Address of the admin server (/metrics, /ready, /live, /shards).
    #[arg(long, env = "RINGSIDE_ADMIN_ADDR", global = true)]
    pub admin_addr: Option<String>,

    /// Number of proxy shards [default: one per allowed CPU, within the
    /// cgroup CPU quota].
    #[arg(long, env = "RINGSIDE_SHARDS", global = true)]
    pub shards: Option<usize>,

    /// Shard pinning: auto, cores (one shard per allowed CPU) or off
    /// [default: auto: pin only on dedicated cores].
    #[arg(long, env = "RINGSIDE_PIN", global = true)]
    pub pin: Option<String>,

    /// Log format: text or json.
    #[arg(long, env = "RINGSIDE_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,

    /// Listen backlog of every route listener [default: 4096].
    #[arg(long, env = "RINGSIDE_BACKLOG", global = true)]
    pub backlog: Option<u32>,

    /// Upstream connect timeout, e.g. 1s or 500ms [default: 1s].
    #[arg(long, env = "RINGSIDE_CONNECT_TIMEOUT", global = true)]
    pub connect_timeout: Option<String>,

    /// Time open connections may take to finish after SIGTERM [default: 30s].
    #[arg(long, env = "RINGSIDE_SHUTDOWN_GRACE", global = true)]
    pub shutdown_grace: Option<String>,

    /// How opaque bytes move: splice (zero-copy) or copy [default: splice].
    #[arg(long, env = "RINGSIDE_FORWARD_MODE", global = true)]
    pub forward_mode: Option<String>,

    /// Time to wait for a client's first bytes before forwarding the
    /// connection as opaque TCP [default: 10s].
    #[arg(long, env = "RINGSIDE_DETECT_TIMEOUT", global = true)]
    pub detect_timeout: Option<String>,

    /// Comma-separated upstream ports whose routes skip detection; an empty
    /// value means none [default: 25,587,3306,4444,5432,6379,9300,11211].
    #[arg(long, env = "RINGSIDE_OPAQUE_PORTS", global = true)]
    pub opaque_ports: Option<String>,

    /// Time a client may take to send an HTTP/1 request head, from its
    /// first byte, before a 408 [default: 10s].
    #[arg(long, env = "RINGSIDE_HEAD_READ_TIMEOUT", global = true)]
    pub head_read_timeout: Option<String>,

    /// Time an HTTP/1 client connection may sit idle between requests
    /// before it is closed [default: 60s].
    #[arg(long, env = "RINGSIDE_CLIENT_IDLE_TIMEOUT", global = true)]
    pub client_idle_timeout: Option<String>,

    /// Time from a request sent upstream to its response head before a
    /// 504; "off" waits [default: off; routes may set their own].
    #[arg(long, env = "RINGSIDE_RESPONSE_TIMEOUT", global = true)]
    pub response_timeout: Option<String>,

    /// Time an opaque connection may pass no byte either way before both
    /// sides are closed; "off" never [default: off].
    #[arg(long, env = "RINGSIDE_OPAQUE_IDLE_TIMEOUT", global = true)]
    pub opaque_idle_timeout: Option<String>,

    /// Most upstream connections a shard opens ahead of a detection
    /// verdict or a first request head [default: 256].
    #[arg(long, env = "RINGSIDE_MAX_SPECULATIVE_CONNECTIONS", global = true)]
    pub max_speculative_connections: Option<usize>,

    /// A client that sent an undecided prefix and then nothing for this
    /// long is forwarded as opaque TCP [default: 300ms].
    #[arg(long, env = "RINGSIDE_DETECT_QUIET_PAUSE", global = true)]
    pub detect_quiet_pause: Option<String>,
    /// Most client connections open at once, split evenly across shards;
    /// more are accepted and reset at once [default: (open-files limit -
    /// 128) / 3].
    #[arg(long, env = "RINGSIDE_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<usize>,

    /// HTTP/2 streams a client may open at once, and requests in flight
    /// upstream per client connection [default: 100].
    #[arg(long, env = "RINGSIDE_HTTP2_MAX_CONCURRENT_STREAMS", global = true)]
    pub http2_max_concurrent_streams: Option<u32>,

    /// Largest HTTP/2 header block a client may send, in bytes
    /// [default: 65536].
    #[arg(long, env = "RINGSIDE_HTTP2_MAX_HEADER_LIST_SIZE", global = true)]
    pub http2_max_header_list_size: Option<u32>,

    /// HTTP/2 streams a client may reset before ringside takes them up,
    /// then GOAWAY ENHANCE_YOUR_CALM [default: 20].
    #[arg(
        long,
        env = "RINGSIDE_HTTP2_MAX_PENDING_ACCEPT_RESET_STREAMS",
        global = true
    )]
    pub http2_max_pending_accept_reset_streams: Option<usize>,

    /// HTTP/2 streams ringside may have to reset for a client's errors,
    /// then GOAWAY ENHANCE_YOUR_CALM [default: 1024].
    #[arg(
        long,
        env = "RINGSIDE_HTTP2_MAX_LOCAL_ERROR_RESET_STREAMS",
        global = true
    )]
    pub http2_max_local_error_reset_streams: Option<usize>,

    /// HTTP/2 streams a client may reset after they were forwarded and
    /// before their response (when also half of its streams), then GOAWAY
    /// ENHANCE_YOUR_CALM [default: 100].
    #[arg(long, env = "RINGSIDE_HTTP2_MAX_PREMATURE_RESETS", global = true)]
    pub http2_max_premature_resets: Option<u64>,

    /// PEM certificate chain (leaf first) of this proxy's identity; with
    /// the other --identity-* flags, turns on mTLS between ringside proxies.
    #[arg(long, env = "RINGSIDE_IDENTITY_CERT", global = true)]
    pub identity_cert: Option<String>,

    /// PEM private key of the identity certificate.
    #[arg(long, env = "RINGSIDE_IDENTITY_KEY", global = true)]
    pub identity_key: Option<String>,

    /// PEM file of the trust anchors that identity certificates chain to.
    #[arg(long, env = "RINGSIDE_IDENTITY_TRUST_ANCHORS", global = true)]
    pub identity_trust_anchors: Option<String>,

    /// This proxy's identity name, a DNS SAN of its certificate and the
    /// SNI peers send, e.g.
    /// web.default.serviceaccount.identity.linkerd.cluster.local.
    #[arg(long, env = "RINGSIDE_IDENTITY_NAME", global = true)]
    pub identity_name: Option<String>,

    /// A SPIFFE ID the identity certificate must also hold as a URI SAN.
    #[arg(long, env = "RINGSIDE_IDENTITY_SPIFFE_ID", global = true)]
    pub identity_spiffe_id: Option<String>,

    /// Name servers for upstream names, IP:PORT[,IP:PORT...] [default:
    /// those of /etc/resolv.conf].
    #[arg(long, env = "RINGSIDE_DNS_SERVERS", global = true)]
    pub dns_servers: Option<String>,

    /// How long one DNS query waits for an answer [default: the
    /// resolv.conf timeout, 5s].
    #[arg(long, env = "RINGSIDE_DNS_TIMEOUT", global = true)]
    pub dns_timeout: Option<String>,

    /// How many times a DNS query is sent before the lookup fails
    /// [default: the resolv.conf attempts, 2].
    #[arg(long, env = "RINGSIDE_DNS_ATTEMPTS", global = true)]
    pub dns_attempts: Option<usize>,

    /// An upstream name is not asked again sooner than this, whatever its
    /// TTL [default: 5s].
    #[arg(long, env = "RINGSIDE_DNS_MIN_TTL", global = true)]
    pub dns_min_ttl: Option<String>,

    /// An upstream name is asked again at least this often, whatever its
    /// TTL [default: 60s].
    #[arg(long, env = "RINGSIDE_DNS_MAX_TTL", global = true)]
    pub dns_max_ttl: Option<String>,

    /// Re-resolve every upstream name at this fixed period instead of at
    /// its TTL.
    #[arg(long, env = "RINGSIDE_DNS_REFRESH", global = true)]
    pub dns_refresh: Option<String>,

    /// Validate the configuration, print the effective one and exit
    /// (0 when valid, 64 when not).
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Two ringside proxies meshed over mTLS in front of a fast and a slow
    /// origin on loopback: HTTP/1, HTTP/2, gRPC and opaque traffic, every
    /// byte checked, then both proxies' stat tables; then keep running.
    Demo(DemoArgs),
    /// Print, install or remove the iptables rules that send the pod's TCP
    /// through ringside's inbound and outbound ports (as Linkerd's proxy-init).
    Iptables(IptablesArgs),
    /// Mint development identity certificates: a CA, then an identity
    /// certificate per proxy.
    Identity(IdentityArgs),
    /// Success rate, requests per second, latency percentiles, connections
    /// and bytes per route of a running ringside, measured over a window
    /// (as `linkerd viz stat`).
    Stat(StatArgs),
    /// The `stat` table refreshed live, with the last refusals and errors
    /// (as `linkerd viz top`); `q` quits.
    Top(TopArgs),
}

/// `ringside identity ...`: development certificates, minted locally.
#[derive(Debug, Clone, clap::Args)]
pub struct IdentityArgs {
    #[command(subcommand)]
    pub action: IdentityAction,
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum IdentityAction {
    /// Make a self-signed ECDSA P-256 CA: writes ca.pem and ca-key.pem.
    Ca {
        /// Directory to write into (created if missing; files in it are
        /// never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Days the CA is valid.
        #[arg(long, default_value_t = 3650)]
        days: u32,
    },
    /// Issue an identity certificate from a CA made by `ca`: writes
    /// cert.pem, key.pem and trust-anchors.pem (the CA's certificate).
    Issue {
        /// Directory holding the CA's ca.pem and ca-key.pem.
        #[arg(long)]
        ca: PathBuf,
        /// The identity's DNS name, e.g.
        /// web.default.serviceaccount.identity.linkerd.cluster.local.
        #[arg(long)]
        name: String,
        /// A SPIFFE ID to add as a URI SAN.
        #[arg(long)]
        spiffe_id: Option<String>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Directory to write into (created if missing; files in it are
        /// never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
}

impl IdentityAction {
    /// Checks the names and days before anything is generated or written.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let days = match self {
            IdentityAction::Ca { days, .. } => *days,
            IdentityAction::Issue {
                name,
                spiffe_id,
                days,
                ..
            } => {
                check_name("--name", name)?;
                if let Some(id) = spiffe_id {
                    check_spiffe_id("--spiffe-id", id)?;
                }
                *days
            }
        };
        if days == 0 {
            return Err(ConfigError::invalid("--days", "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::IdentityAction;

    #[test]
    fn mint_flags_are_checked_before_minting() {
        let issue = |name: &str, days: u32| IdentityAction::Issue {
            ca: "ca".into(),
            name: name.into(),
            spiffe_id: Some("spiffe://cluster.local/ns/a/sa/b".into()),
            days,
            out: "out".into(),
        };
        assert!(issue("a.b", 1).validate().is_ok());
        let err = issue("a b", 1).validate().unwrap_err().to_string();
        assert!(err.starts_with("--name: "), "{err}");
        let err = issue("a.b", 0).validate().unwrap_err().to_string();
        assert!(err.starts_with("--days: "), "{err}");
    }
}
