//! Mesh peers: which destinations are ringside (or Linkerd) proxies,
//! reached over mutual TLS to their inbound port instead of directly.
//! `[[mesh.peer]]` (or `--mesh-peer NETWORK=IDENTITY[@PORT]`) names a
//! destination address or network whose proxies present `identity` and
//! take meshed connections on `port` (Linkerd's inbound 4143). Who may
//! connect to our own inbound is `inbound_policy.rs`.

use serde::{Deserialize, Serialize};

use super::iptables::{parse_cidr, Cidr};
use super::value::identity_name;
use super::{Args, ConfigError};

/// Linkerd's inbound port, where meshed peers take mTLS connections.
pub const DEFAULT_PEER_PORT: u16 = 4143;

/// A destination network whose proxies are mesh peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshPeer {
    pub network: Cidr,
    /// The identity its proxies must present (the SNI sent, and the DNS
    /// SAN their certificate must hold).
    pub identity: String,
    /// Where its proxy takes meshed connections.
    pub port: u16,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MeshTable {
    #[serde(default)]
    pub peer: Vec<PeerTable>,
}

impl MeshTable {
    pub fn is_empty(&self) -> bool {
        self.peer.is_empty()
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PeerTable {
    pub network: String,
    pub identity: String,
    pub port: Option<u16>,
}

/// `--mesh-peer` flags replace the file's `[[mesh.peer]]` tables.
pub(super) fn peers(args: &Args, table: &MeshTable) -> Result<Vec<MeshPeer>, ConfigError> {
    if !args.mesh_peer.is_empty() {
        return args.mesh_peer.iter().map(|flag| peer_flag(flag)).collect();
    }
    table
        .peer
        .iter()
        .enumerate()
        .map(|(i, peer)| {
            let key = format!("mesh.peer[{i}]");
            let network = parse_cidr(&format!("{key}.network"), &peer.network)?;
            let identity = identity_name(&format!("{key}.identity"), &peer.identity)?;
            let port = port(&format!("{key}.port"), peer.port)?;
            Ok(MeshPeer {
                network,
                identity,
                port,
            })
        })
        .collect()
}

/// `NETWORK=IDENTITY[@PORT]`.
fn peer_flag(flag: &str) -> Result<MeshPeer, ConfigError> {
    let key = "--mesh-peer";
    let bad = || ConfigError::invalid(key, format!("{flag:?} is not NETWORK=IDENTITY[@PORT]"));
    let (network, rest) = flag.split_once('=').ok_or_else(bad)?;
    let (identity_text, port_text) = match rest.rsplit_once('@') {
        Some((identity, port)) => (identity, Some(port)),
        None => (rest, None),
    };
    let port_number = match port_text {
        Some(text) => Some(text.parse::<u16>().map_err(|_| bad())?),
        None => None,
    };
    Ok(MeshPeer {
        network: parse_cidr(key, network.trim())?,
        identity: identity_name(key, identity_text.trim())?,
        port: port(key, port_number)?,
    })
}

fn port(key: &str, port: Option<u16>) -> Result<u16, ConfigError> {
    match port.unwrap_or(DEFAULT_PEER_PORT) {
        0 => Err(ConfigError::invalid(key, "0 is not a port")),
        port => Ok(port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_flags_parse_and_bad_ones_name_the_flag() {
        let peer = peer_flag("198.18.0.0/24=web.ns.svc@14143").unwrap();
        assert_eq!(peer.network.prefix, 24);
        assert_eq!((peer.identity.as_str(), peer.port), ("web.ns.svc", 14143));
        assert_eq!(
            peer_flag("10.0.0.1=api.ns").unwrap().port,
            DEFAULT_PEER_PORT
        );
        for bad in [
            "10.0.0.1",
            "nope=web.ns",
            "10.0.0.1=",
            "10.0.0.1=web..ns",
            "10.0.0.1=web@0",
        ] {
            let err = peer_flag(bad).unwrap_err().to_string();
            assert!(err.starts_with("--mesh-peer: "), "{bad}: {err}");
        }
    }
}
