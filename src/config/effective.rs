//! The effective configuration in the file's own shape, for `--check`:
//! every key with the value that layering and defaults gave it, written by
//! the same tables that read the file (`FileConfig`, serialised with
//! `toml`), so that what is printed always parses back to the same
//! `Config`. Durations are written as the file takes them (`"10s"`).

use std::fmt;
use std::time::Duration;

use super::dns::DnsTable;
use super::file::{
    AdminTable, DetectTable, FileConfig, InboundTable, LogTable, OutboundTable, ProxyTable,
    RouteTable, RuntimeTable,
};
use super::identity::IdentityTable;
use super::inbound_policy::{AuthorizePortTable, AuthorizeValue};
use super::limits::Http2Table;
use super::mesh_peers::{MeshTable, PeerTable};
use super::{Authorize, Config, Direction, ForwardMode, IdentityMatch, LogFormat};

impl fmt::Display for Config {
    /// The effective configuration, as TOML a user could write.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = FileConfig::effective(self);
        f.write_str(&toml::to_string(&file).map_err(|_| fmt::Error)?)?;
        let inbound_on = self
            .transparent
            .iter()
            .any(|t| t.direction == Direction::Inbound);
        if !inbound_on && self.inbound_policy.default != Authorize::AllUnauthenticated {
            // Only `--inbound-authorize` gets here: in the file the key
            // lives in `[inbound]`, whose presence turns the listener on.
            writeln!(
                f,
                "# --inbound-authorize = {} (inbound routes; [inbound] is off)",
                toml::Value::try_from(authorize_value(&self.inbound_policy.default))
                    .map_err(|_| fmt::Error)?
            )?;
        }
        Ok(())
    }
}

impl FileConfig {
    fn effective(config: &Config) -> FileConfig {
        let proxy = ProxyTable {
            connect_timeout: Some(duration(config.timeouts.connect)),
            forward_mode: Some(
                match config.forward_mode {
                    ForwardMode::Splice => "splice",
                    ForwardMode::Copy => "copy",
                }
                .into(),
            ),
            pipe_size_bytes: Some(config.pipe_size_bytes),
            pool_idle_timeout: Some(duration(config.timeouts.pool_idle)),
            head_read_timeout: Some(duration(config.timeouts.head_read)),
            client_idle_timeout: Some(duration(config.timeouts.client_idle)),
            response_timeout: Some(optional_duration(config.timeouts.response)),
            opaque_idle_timeout: Some(optional_duration(config.timeouts.opaque_idle)),
            max_speculative_connections: Some(config.max_speculative_connections),
            max_connections: config.max_connections,
        };
        let detect = &config.detect;
        let http2 = &config.http2;
        let listener = |direction| {
            let found = config.transparent.iter().find(|t| t.direction == direction);
            found.map(|t| (t.listen.to_string(), t.forward_to.as_str().to_string()))
        };
        let policy = &config.inbound_policy;
        FileConfig {
            admin: AdminTable {
                listen: Some(config.admin_addr.to_string()),
            },
            log: LogTable {
                format: Some(
                    match config.log_format {
                        LogFormat::Text => "text",
                        LogFormat::Json => "json",
                    }
                    .into(),
                ),
            },
            runtime: RuntimeTable {
                shards: config.shards,
                pin: Some(config.pin.as_str().into()),
                backlog: Some(config.backlog),
                shutdown_grace: Some(duration(config.timeouts.shutdown_grace)),
            },
            proxy,
            detect: DetectTable {
                timeout: Some(duration(config.timeouts.detect)),
                opaque_ports: Some(detect.opaque_ports.clone()),
                peek_bytes: Some(detect.peek_bytes),
                server_first_memory: Some(duration(detect.server_first_memory)),
                quiet_pause: Some(duration(config.timeouts.detect_quiet_pause)),
            },
            http2: Http2Table {
                max_concurrent_streams: Some(http2.max_concurrent_streams),
                max_header_list_size: Some(http2.max_header_list_size),
                max_pending_accept_reset_streams: Some(http2.max_pending_accept_reset_streams),
                max_local_error_reset_streams: Some(http2.max_local_error_reset_streams),
                max_premature_resets: Some(http2.max_premature_resets),
            },
            identity: config.identity.as_ref().map(|identity| IdentityTable {
                cert: Some(identity.cert.display().to_string()),
                key: Some(identity.key.display().to_string()),
                trust_anchors: Some(identity.trust_anchors.display().to_string()),
                name: Some(identity.name.clone()),
                spiffe_id: identity.spiffe_id.clone(),
            }),
            outbound: listener(Direction::Outbound).map(|(listen, _)| OutboundTable {
                listen: Some(listen),
            }),
            inbound: listener(Direction::Inbound).map(|(listen, forward_to)| InboundTable {
                listen: Some(listen),
                forward_to: Some(forward_to),
                authorize: Some(authorize_value(&policy.default)),
                authorize_port: policy
                    .ports
                    .iter()
                    .map(|(ranges, authorize)| AuthorizePortTable {
                        ports: ranges.iter().flat_map(|r| r.first..=r.last).collect(),
                        authorize: authorize_value(authorize),
                    })
                    .collect(),
            }),
            route: config
                .routes
                .iter()
                .map(|route| RouteTable {
                    listen: route.listen.to_string(),
                    upstreams: route.upstreams.iter().map(|u| u.to_string()).collect(),
                    direction: Some(route.direction.as_str().into()),
                    protocol: Some(route.protocol.as_str().into()),
                    response_timeout: (route.response_timeout != config.timeouts.response)
                        .then(|| optional_duration(route.response_timeout)),
                })
                .collect(),
            mesh: MeshTable {
                peer: config
                    .mesh_peers
                    .iter()
                    .map(|peer| PeerTable {
                        network: format!("{}/{}", peer.network.addr, peer.network.prefix),
                        identity: peer.identity.clone(),
                        port: Some(peer.port),
                    })
                    .collect(),
            },
            dns: DnsTable::effective(&config.dns, duration),
        }
    }
}

fn authorize_value(authorize: &Authorize) -> AuthorizeValue {
    match authorize {
        Authorize::Identities(list) => AuthorizeValue::Identities(
            list.iter()
                .map(|entry| match entry {
                    IdentityMatch::Exact(name) => name.clone(),
                    IdentityMatch::Suffix(suffix) => format!("*.{suffix}"),
                })
                .collect(),
        ),
        named => AuthorizeValue::Named(named.label().into()),
    }
}

fn duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// A timeout that may be off, as the file writes it.
fn optional_duration(timeout: Option<Duration>) -> String {
    timeout.map_or_else(|| "off".into(), duration)
}
