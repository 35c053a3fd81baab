//! The demo's two proxies, configured as two sidecars of a mesh are (and as
//! README's "Mesh" section runs two on one machine): proxy A beside the
//! client workload (`web`), with one outbound route over both origins,
//! whose address (loopback) is a mesh peer; and proxy B beside the origins
//! (`api`), with an inbound listener that lets in `web`'s identity only
//! and forwards to the port Linkerd's transport header names. Each is the
//! `ringside` binary with flags (`proxy`); the demo's `--config` file and
//! `RINGSIDE_*` environment reach both, under the flags the demo sets.

use std::net::SocketAddr;
use std::path::Path;

use ringside::config::IdentityConfig;

use super::identities::{Identities, API, WEB};
use super::origins::Origin;
use super::proxy::Proxy;

/// Where the proxies listen.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Proxy A's route, where the client connects.
    pub outbound: u16,
    pub a_admin: u16,
    /// Proxy B's inbound listener, where A's mTLS connections arrive.
    pub inbound: u16,
    pub b_admin: u16,
}

impl Ports {
    /// Linkerd's: outbound 4140, inbound 4143, admin 4191, and 4192 for the
    /// second admin server, as README's two meshed proxies have it.
    pub const WELL_KNOWN: Ports = Ports {
        outbound: 4140,
        a_admin: 4191,
        inbound: 4143,
        b_admin: 4192,
    };

    /// Every port the kernel's choice.
    pub const EPHEMERAL: Ports = Ports {
        outbound: 0,
        a_admin: 0,
        inbound: 0,
        b_admin: 0,
    };
}

/// Both proxies, running.
pub struct Mesh {
    pub a: Proxy,
    pub b: Proxy,
}

impl Mesh {
    /// Starts B first, since A's mesh peer names B's inbound port.
    pub fn start(
        config_file: Option<&Path>,
        identities: &Identities,
        origins: &[Origin],
        ports: Ports,
    ) -> anyhow::Result<Mesh> {
        let base: Vec<String> = match config_file {
            Some(file) => vec!["--config".into(), file.display().to_string()],
            None => Vec::new(),
        };
        let mut b_args = base.clone();
        b_args.extend(flags(&[
            ("--admin-addr", loopback(ports.b_admin)),
            ("--inbound-listen", loopback(ports.inbound)),
            ("--inbound-forward-to", "localhost".into()),
            ("--inbound-authorize", WEB.into()),
        ]));
        b_args.extend(identity(&identities.api));
        let b = Proxy::start("proxy B", &b_args)?;

        let upstreams: Vec<String> = origins.iter().map(|o| o.addr.to_string()).collect();
        let mut a_args = base;
        a_args.extend(flags(&[
            ("--admin-addr", loopback(ports.a_admin)),
            (
                "--route",
                format!("{}={}", loopback(ports.outbound), upstreams.join(",")),
            ),
            (
                "--mesh-peer",
                format!("127.0.0.1={API}@{}", b.listen.port()),
            ),
        ]));
        a_args.extend(identity(&identities.web));
        let a = Proxy::start("proxy A", &a_args)?;
        Ok(Mesh { a, b })
    }
}

fn identity(identity: &IdentityConfig) -> Vec<String> {
    let path = |path: &Path| path.display().to_string();
    flags(&[
        ("--identity-cert", path(&identity.cert)),
        ("--identity-key", path(&identity.key)),
        ("--identity-trust-anchors", path(&identity.trust_anchors)),
        ("--identity-name", identity.name.clone()),
    ])
}

fn flags(pairs: &[(&str, String)]) -> Vec<String> {
    let pairs = pairs
        .iter()
        .map(|(flag, value)| [flag.to_string(), value.clone()]);
    pairs.flatten().collect()
}

fn loopback(port: u16) -> String {
    SocketAddr::from(([127, 0, 0, 1], port)).to_string()
}
