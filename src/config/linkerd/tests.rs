use std::ffi::OsString;
use std::time::Duration;

use super::super::{Authorize, Config, Direction, LogFormat};
use super::{ControlHost, HONOURED};

/// A self-signed certificate, PEM: what the trust-anchors variable holds.
fn anchors_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["root.linkerd.cluster.local".into()]).unwrap();
    params.self_signed(&key).unwrap().pem()
}

/// The variables the injector writes for a pod in `emojivoto` (linkerd2's
/// `_proxy.tpl`), plus `extra` over them (an empty value removes one).
fn env(extra: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    let anchors = anchors_pem();
    let base: Vec<(&str, &str)> = vec![
        (
            "LINKERD2_PROXY_LOG",
            "warn,linkerd=info,hickory=error,[{headers}]=off,[{request}]=off",
        ),
        ("LINKERD2_PROXY_LOG_FORMAT", "plain"),
        (
            "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
            "linkerd-dst-headless.linkerd.svc.cluster.local.:8086",
        ),
        (
            "LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS",
            "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,fd00::/8",
        ),
        (
            "LINKERD2_PROXY_POLICY_SVC_ADDR",
            "linkerd-policy.linkerd.svc.cluster.local.:8090",
        ),
        (
            "LINKERD2_PROXY_POLICY_WORKLOAD",
            "{\"ns\":\"emojivoto\", \"pod\":\"web-0\"}\n",
        ),
        (
            "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY",
            "all-unauthenticated",
        ),
        (
            "LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS",
            "10.0.0.0/8,fd00::/8",
        ),
        ("LINKERD2_PROXY_CONTROL_STREAM_INITIAL_TIMEOUT", "3s"),
        ("LINKERD2_PROXY_CONTROL_LISTEN_ADDR", "[::]:4190"),
        ("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", "[::]:4191"),
        ("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR", "127.0.0.1:4140"),
        (
            "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS",
            "127.0.0.1:4140,[::1]:4140",
        ),
        ("LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "[::]:4143"),
        ("LINKERD2_PROXY_INBOUND_IPS", "10.42.0.7,fd00::7"),
        ("LINKERD2_PROXY_INBOUND_PORTS", "8080,9000-9001"),
        (
            "LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES",
            "svc.cluster.local.",
        ),
        ("LINKERD2_PROXY_INBOUND_ACCEPT_KEEPALIVE", "10000ms"),
        (
            "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION",
            "25,587,3306,4444,5432,6379,9300,11211",
        ),
        (
            "LINKERD2_PROXY_DESTINATION_CONTEXT",
            "{\"ns\":\"emojivoto\", \"nodeName\":\"n1\", \"pod\":\"web-0\"}\n",
        ),
        (
            "LINKERD2_PROXY_IDENTITY_DIR",
            "/var/run/linkerd/identity/end-entity",
        ),
        ("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", &anchors),
        (
            "LINKERD2_PROXY_IDENTITY_TOKEN_FILE",
            "/var/run/secrets/tokens/linkerd-identity-token",
        ),
        (
            "LINKERD2_PROXY_IDENTITY_SVC_ADDR",
            "linkerd-identity-headless.linkerd.svc.cluster.local.:8080",
        ),
        (
            "LINKERD2_PROXY_IDENTITY_LOCAL_NAME",
            "web.emojivoto.serviceaccount.identity.linkerd.cluster.local",
        ),
        (
            "LINKERD2_PROXY_IDENTITY_SVC_NAME",
            "linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local",
        ),
        (
            "LINKERD2_PROXY_DESTINATION_SVC_NAME",
            "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local",
        ),
        (
            "LINKERD2_PROXY_POLICY_SVC_NAME",
            "linkerd-destination.linkerd.serviceaccount.identity.linkerd.cluster.local",
        ),
        ("PATH", "/usr/bin"),
    ];
    let mut vars: Vec<(String, String)> = base
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (name, value) in extra {
        vars.retain(|(k, _)| k != name);
        if !value.is_empty() {
            vars.push((name.to_string(), value.to_string()));
        }
    }
    vars.into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

fn load(extra: &[(&str, &str)]) -> Result<Config, String> {
    Config::from_linkerd_env(env(extra)).map_err(|err| err.to_string())
}

/// The error, which must be one line starting with the variable's name.
fn error(extra: &[(&str, &str)]) -> String {
    let err = load(extra).expect_err("a bad value must be refused");
    assert!(!err.contains('\n'), "one line: {err}");
    err
}

#[test]
fn the_injectors_environment_maps_onto_the_config() {
    let config = load(&[]).unwrap();
    assert_eq!(config.admin_addr, "[::]:4191".parse().unwrap());
    let outbound = &config.transparent[0];
    assert_eq!(outbound.direction, Direction::Outbound);
    assert_eq!(outbound.listen, "127.0.0.1:4140".parse().unwrap());
    let inbound = &config.transparent[1];
    assert_eq!(inbound.direction, Direction::Inbound);
    assert_eq!(inbound.listen, "[::]:4143".parse().unwrap());
    assert_eq!(
        config.detect.opaque_ports,
        [25, 587, 3306, 4444, 5432, 6379, 9300, 11211]
    );
    assert_eq!(config.inbound_policy.default, Authorize::AllUnauthenticated);
    assert_eq!(config.log_format, LogFormat::Text);
    assert_eq!(config.timeouts.shutdown_grace, Duration::from_secs(120));
    assert!(config.routes.is_empty() && config.identity.is_none());

    let linkerd = config.linkerd.unwrap();
    let identity = &linkerd.identity;
    assert_eq!(
        identity.local_name,
        "web.emojivoto.serviceaccount.identity.linkerd.cluster.local"
    );
    assert_eq!(identity.svc.port, 8080);
    assert_eq!(
        identity.svc.host,
        ControlHost::Name("linkerd-identity-headless.linkerd.svc.cluster.local.".into())
    );
    assert_eq!(
        identity.svc.server_name.as_deref(),
        Some("linkerd-identity.linkerd.serviceaccount.identity.linkerd.cluster.local")
    );
    assert_eq!(identity.min_refresh, Duration::from_secs(10));
    assert_eq!(identity.max_refresh, Duration::from_secs(86_400));
    assert!(linkerd
        .destination
        .context
        .starts_with("{\"ns\":\"emojivoto\""));
    assert_eq!(linkerd.destination.profile_networks.len(), 5);
    assert_eq!(
        linkerd.policy.workload,
        "{\"ns\":\"emojivoto\", \"pod\":\"web-0\"}"
    );
    assert_eq!(linkerd.inbound_ips.len(), 2);
    assert_eq!(linkerd.inbound_ports.len(), 2);
    assert_eq!(linkerd.cluster_networks.len(), 2);
    assert_eq!(
        linkerd.log_filter.as_deref(),
        Some("warn,ringside=info,hickory=error,[{headers}]=off,[{request}]=off")
    );
    assert_eq!(
        linkerd.ignored,
        [
            "LINKERD2_PROXY_CONTROL_STREAM_INITIAL_TIMEOUT",
            "LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES",
            "LINKERD2_PROXY_INBOUND_ACCEPT_KEEPALIVE",
        ]
    );
    assert!(linkerd.banner().starts_with(
        "linkerd mode: identity web.emojivoto.serviceaccount.identity.linkerd.cluster.local from linkerd-identity-headless"
    ));
}

#[test]
fn honoured_variables_set_what_they_name() {
    let config = load(&[
        ("LINKERD2_PROXY_CORES", "3"),
        ("LINKERD2_PROXY_LOG_FORMAT", "json"),
        ("LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD", "45s"),
        ("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", "deny"),
        (
            "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION",
            "25,9000-9002",
        ),
        ("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS", ""),
        ("LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR", "127.0.0.1:5140"),
        ("LINKERD2_PROXY_IDENTITY_MIN_REFRESH", "1s"),
    ])
    .unwrap();
    assert_eq!(config.shards, Some(3));
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.timeouts.shutdown_grace, Duration::from_secs(45));
    assert_eq!(config.inbound_policy.default, Authorize::Deny);
    assert_eq!(config.detect.opaque_ports, [25, 9000, 9001, 9002]);
    assert_eq!(
        config.transparent[0].listen,
        "127.0.0.1:5140".parse().unwrap()
    );
    let identity = config.linkerd.unwrap().identity;
    assert_eq!(identity.min_refresh, Duration::from_secs(1));
}

#[test]
fn loopback_control_planes_need_no_name_and_are_plaintext() {
    let config = load(&[
        ("LINKERD2_PROXY_IDENTITY_SVC_ADDR", "localhost.:8080"),
        ("LINKERD2_PROXY_IDENTITY_SVC_NAME", ""),
        ("LINKERD2_PROXY_DESTINATION_SVC_ADDR", "127.0.0.1:8086"),
        ("LINKERD2_PROXY_DESTINATION_SVC_NAME", ""),
        ("LINKERD2_PROXY_POLICY_SVC_ADDR", "[::1]:8090"),
    ])
    .unwrap();
    let linkerd = config.linkerd.unwrap();
    assert_eq!(linkerd.identity.svc.server_name, None);
    assert_eq!(linkerd.destination.svc.server_name, None);
    assert_eq!(linkerd.policy.svc.server_name, None);
    assert_eq!(linkerd.policy.svc.to_string(), "[::1]:8090");
    // `localhost` without its dot is a name like any other (Linkerd's
    // `Name::is_localhost`), so it needs the server's name.
    let err = error(&[
        ("LINKERD2_PROXY_IDENTITY_SVC_ADDR", "localhost:8080"),
        ("LINKERD2_PROXY_IDENTITY_SVC_NAME", ""),
    ]);
    assert!(
        err.starts_with("LINKERD2_PROXY_IDENTITY_SVC_NAME: required with a"),
        "{err}"
    );
}

#[test]
fn bad_values_are_one_line_naming_the_variable() {
    let cases: &[(&str, &str)] = &[
        ("LINKERD2_PROXY_INBOUND_LISTEN_ADDR", "4143"),
        ("LINKERD2_PROXY_ADMIN_LISTEN_ADDR", "[::]:x"),
        (
            "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS",
            "127.0.0.1:4140,[::1]:4141",
        ),
        (
            "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS",
            "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3",
        ),
        ("LINKERD2_PROXY_CONTROL_LISTEN_ADDR", "nowhere"),
        ("LINKERD2_PROXY_IDENTITY_DIR", ""),
        ("LINKERD2_PROXY_IDENTITY_TOKEN_FILE", " "),
        ("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", "not PEM"),
        ("LINKERD2_PROXY_IDENTITY_LOCAL_NAME", "not a name"),
        ("LINKERD2_PROXY_IDENTITY_SVC_ADDR", "linkerd-identity:port"),
        ("LINKERD2_PROXY_IDENTITY_SVC_ADDR", "no-port.example"),
        ("LINKERD2_PROXY_IDENTITY_SVC_NAME", "bad name"),
        ("LINKERD2_PROXY_IDENTITY_MIN_REFRESH", "10"),
        ("LINKERD2_PROXY_IDENTITY_MAX_REFRESH", "1.5h"),
        ("LINKERD2_PROXY_DESTINATION_SVC_ADDR", ""),
        ("LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS", "10.0.0.0/33"),
        ("LINKERD2_PROXY_POLICY_SVC_ADDR", ""),
        ("LINKERD2_PROXY_POLICY_WORKLOAD", "web-0"),
        ("LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS", "cluster"),
        ("LINKERD2_PROXY_INBOUND_DEFAULT_POLICY", "allow"),
        (
            "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION",
            "25,80-70",
        ),
        ("LINKERD2_PROXY_INBOUND_PORTS", "http"),
        ("LINKERD2_PROXY_INBOUND_IPS", "10.0.0.300"),
        ("LINKERD2_PROXY_LOG", "info,[[="),
        ("LINKERD2_PROXY_LOG_FORMAT", "logfmt"),
        ("LINKERD2_PROXY_CORES", "0"),
        ("LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD", "2 minutes"),
    ];
    for (name, value) in cases {
        let err = error(&[(name, value)]);
        assert!(
            err.starts_with(&format!("{name}: ")),
            "{name}={value:?}: {err}"
        );
    }
}

#[test]
fn cluster_policies_need_the_cluster_networks() {
    let without = [
        (
            "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY",
            "cluster-unauthenticated",
        ),
        ("LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS", ""),
    ];
    let err = error(&without);
    assert!(
        err.contains("needs LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS"),
        "{err}"
    );
    let with = [(
        "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY",
        "cluster-authenticated",
    )];
    let config = load(&with).unwrap();
    assert_eq!(config.inbound_policy.default, Authorize::AllAuthenticated);
}

#[test]
fn server_id_and_name_stand_for_the_local_name_when_they_agree() {
    let name = "web.emojivoto.serviceaccount.identity.linkerd.cluster.local";
    let both = [
        ("LINKERD2_PROXY_IDENTITY_LOCAL_NAME", ""),
        ("LINKERD2_PROXY_IDENTITY_SERVER_ID", name),
        ("LINKERD2_PROXY_IDENTITY_SERVER_NAME", name),
    ];
    assert_eq!(
        load(&both).unwrap().linkerd.unwrap().identity.local_name,
        name
    );
    let differ = [
        ("LINKERD2_PROXY_IDENTITY_LOCAL_NAME", ""),
        ("LINKERD2_PROXY_IDENTITY_SERVER_ID", name),
        ("LINKERD2_PROXY_IDENTITY_SERVER_NAME", "other.example"),
    ];
    assert!(error(&differ).starts_with("LINKERD2_PROXY_IDENTITY_SERVER_ID: "));
}

#[test]
fn linkerds_durations_read_as_linkerd_reads_them() {
    let read = |text| super::values::duration("D", text).map_err(|e| e.to_string());
    assert_eq!(read(" 10s\t"), Ok(Duration::from_secs(10)));
    assert_eq!(read("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(read("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(read("1d"), Ok(Duration::from_secs(86_400)));
    assert_eq!(read("0"), Ok(Duration::ZERO));
    for bad in ["1", "1 s", "1.5s", "12y", "", "99999999999999999999d"] {
        assert!(read(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn every_honoured_variable_is_documented_in_the_readme() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for name in HONOURED {
        assert!(
            readme.contains(&format!("`LINKERD2_PROXY_{name}`")),
            "{name}"
        );
    }
}
