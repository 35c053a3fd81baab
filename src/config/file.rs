//! The TOML file layer. Every table denies unknown fields, so a typo is an
//! error that names the key instead of a setting silently ignored.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::dns::DnsTable;
use super::identity::IdentityTable;
use super::inbound_policy::{AuthorizePortTable, AuthorizeValue};
use super::limits::Http2Table;
use super::mesh_peers::MeshTable;
use super::route::{build_route, RouteSpec};
use super::value::optional_duration;
use super::{read_text, ConfigError};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    #[serde(default)]
    pub admin: AdminTable,
    #[serde(default)]
    pub log: LogTable,
    #[serde(default)]
    pub runtime: RuntimeTable,
    #[serde(default)]
    pub proxy: ProxyTable,
    #[serde(default)]
    pub detect: DetectTable,
    #[serde(default)]
    pub http2: Http2Table,
    pub identity: Option<IdentityTable>,
    /// `None` when the section is absent: the listener is off.
    pub outbound: Option<OutboundTable>,
    pub inbound: Option<InboundTable>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteTable>,
    #[serde(default, skip_serializing_if = "MeshTable::is_empty")]
    pub mesh: MeshTable,
    #[serde(default)]
    pub dns: DnsTable,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OutboundTable {
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InboundTable {
    pub listen: Option<String>,
    pub forward_to: Option<String>,
    /// The default policy of inbound ports.
    pub authorize: Option<AuthorizeValue>,
    /// Policies of named ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorize_port: Vec<AuthorizePortTable>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DetectTable {
    pub timeout: Option<String>,
    pub opaque_ports: Option<Vec<u16>>,
    pub peek_bytes: Option<usize>,
    pub server_first_memory: Option<String>,
    pub quiet_pause: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdminTable {
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuntimeTable {
    pub shards: Option<usize>,
    pub pin: Option<String>,
    pub backlog: Option<u32>,
    pub shutdown_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogTable {
    pub format: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProxyTable {
    pub connect_timeout: Option<String>,
    pub forward_mode: Option<String>,
    pub pipe_size_bytes: Option<usize>,
    pub pool_idle_timeout: Option<String>,
    pub head_read_timeout: Option<String>,
    pub client_idle_timeout: Option<String>,
    pub response_timeout: Option<String>,
    pub opaque_idle_timeout: Option<String>,
    pub max_speculative_connections: Option<usize>,
    pub max_connections: Option<usize>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RouteTable {
    pub listen: String,
    pub upstreams: Vec<String>,
    pub direction: Option<String>,
    pub protocol: Option<String>,
    /// Overrides `proxy.response_timeout` for this route (`"off"` too).
    pub response_timeout: Option<String>,
}

impl FileConfig {
    pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = read_text(path)?;
        Self::parse(&text).map_err(|message| ConfigError::File {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses TOML text; the error is one line with the line number.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|err| {
            let line = err
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            let message = err.message().trim().replace('\n', " ");
            match line {
                Some(line) => format!("line {line}: {message}"),
                None => message,
            }
        })
    }
}

impl RouteTable {
    pub fn validate(&self, index: usize) -> Result<RouteSpec, ConfigError> {
        let key = format!("route[{index}]");
        let mut spec = build_route(
            &key,
            &self.listen,
            &self.upstreams,
            self.direction.as_deref(),
            self.protocol.as_deref(),
        )?;
        if let Some(timeout) = &self.response_timeout {
            let key = format!("{key}.response_timeout");
            spec.response_timeout = Some(optional_duration(&key, Some(timeout), None)?);
        }
        Ok(spec)
    }
}
