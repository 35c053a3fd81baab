use std::collections::HashMap;

use linkerd2_proxy_api::destination::{
    protocol_hint::{self, OpaqueTransport},
    tls_identity::{DnsLikeIdentity, Strategy, UriLikeIdentity},
    ProtocolHint as PbHint, TlsIdentity, WeightedAddr,
};

use super::*;

fn weighted(addr: &str) -> WeightedAddr {
    let addr: SocketAddr = addr.parse().unwrap();
    WeightedAddr {
        addr: Some(addr.into()),
        weight: 10_000,
        ..Default::default()
    }
}

fn dns_identity(name: &str) -> TlsIdentity {
    TlsIdentity {
        strategy: Some(Strategy::DnsLikeIdentity(DnsLikeIdentity {
            name: name.to_string(),
        })),
        server_name: None,
    }
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let pairs = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    pairs.collect()
}

#[test]
fn an_endpoint_keeps_its_identity_hint_transport_port_and_labels() {
    let mut pb = weighted("10.1.2.3:8080");
    pb.tls_identity = Some(dns_identity(
        "Web.NS.serviceaccount.identity.linkerd.cluster.local",
    ));
    pb.protocol_hint = Some(PbHint {
        protocol: Some(protocol_hint::Protocol::H2(protocol_hint::H2 {})),
        opaque_transport: Some(OpaqueTransport { inbound_port: 4143 }),
    });
    pb.metric_labels = map(&[("pod", "web-1"), ("service", "own")]);
    let set = map(&[("service", "web"), ("namespace", "ns")]);
    let endpoint = endpoint(pb, &set).unwrap();
    assert_eq!(endpoint.addr, "10.1.2.3:8080".parse().unwrap());
    assert_eq!(
        endpoint.identity.as_deref(),
        Some("web.ns.serviceaccount.identity.linkerd.cluster.local")
    );
    assert_eq!(endpoint.protocol, Some(ProtocolHint::Http2));
    assert_eq!(endpoint.tagged_port, Some(4143));
    let labels: Vec<(&str, &str)> = endpoint
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("dst_namespace", "ns"),
            ("dst_pod", "web-1"),
            ("dst_service", "own"),
        ],
        "sorted, prefixed, the endpoint's own winning"
    );
}

#[test]
fn without_identity_or_hint_an_endpoint_is_plain() {
    let endpoint = endpoint(weighted("[fd00::1]:80"), &HashMap::new()).unwrap();
    assert_eq!(endpoint, Endpoint::plain("[fd00::1]:80".parse().unwrap()));
    let mut opaque = weighted("10.0.0.1:3306");
    opaque.protocol_hint = Some(PbHint {
        protocol: Some(protocol_hint::Protocol::Opaque(protocol_hint::Opaque {})),
        opaque_transport: None,
    });
    let opaque = super::endpoint(opaque, &HashMap::new()).unwrap();
    assert_eq!(opaque.protocol, Some(ProtocolHint::Opaque));
    assert_eq!(opaque.tagged_port, None);
}

#[test]
fn hostile_ports_are_refused_or_ignored() {
    for port in [0, 65_536, u32::MAX] {
        let mut pb = weighted("10.0.0.1:80");
        pb.addr.as_mut().unwrap().port = port;
        assert_eq!(
            endpoint(pb, &HashMap::new()),
            Err(EndpointError::BadPort(port))
        );
    }
    assert_eq!(
        endpoint(WeightedAddr::default(), &HashMap::new()),
        Err(EndpointError::NoAddress)
    );
    let mut no_ip = weighted("10.0.0.1:80");
    no_ip.addr.as_mut().unwrap().ip = None;
    assert_eq!(
        endpoint(no_ip, &HashMap::new()),
        Err(EndpointError::NoAddress)
    );
    // The tagged transport's port is ignored outside 1..65535, as Linkerd does.
    for inbound_port in [0, 65_535, 70_000, u32::MAX] {
        let mut pb = weighted("10.0.0.1:80");
        pb.protocol_hint = Some(PbHint {
            protocol: None,
            opaque_transport: Some(OpaqueTransport { inbound_port }),
        });
        let endpoint = endpoint(pb, &HashMap::new()).unwrap();
        assert_eq!(endpoint.tagged_port, None, "{inbound_port}");
    }
}

#[test]
fn identities_must_be_dns_names_and_uri_ones_are_refused() {
    for bad in [
        "",
        "web ns",
        "web..ns",
        "-x.ns",
        &"a".repeat(300),
        "web\n.ns",
    ] {
        let mut pb = weighted("10.0.0.1:80");
        pb.tls_identity = Some(dns_identity(bad));
        let endpoint = endpoint(pb, &HashMap::new()).unwrap();
        assert_eq!(endpoint.identity, None, "ignored, as Linkerd does: {bad:?}");
    }
    let mut uri = weighted("10.0.0.1:80");
    uri.tls_identity = Some(TlsIdentity {
        strategy: Some(Strategy::UriLikeIdentity(UriLikeIdentity {
            uri: "spiffe://cluster.local/ns/web\u{7}".to_string(),
        })),
        server_name: Some(DnsLikeIdentity {
            name: "web.ns".to_string(),
        }),
    });
    assert_eq!(
        endpoint(uri, &HashMap::new()),
        Err(EndpointError::UnverifiableIdentity(
            "spiffe://cluster.local/ns/web".to_string()
        )),
        "never plaintext instead, and the log line is printable"
    );
}

#[test]
fn remote_labels_are_bounded_in_number_length_and_alphabet() {
    let many: HashMap<String, String> = (0..1_000)
        .map(|i| (format!("label_{i:04}"), "v".to_string()))
        .collect();
    let kept = labels(&many, &HashMap::new());
    assert_eq!(kept.len(), MAX_LABELS);
    assert_eq!(kept[0].0, "dst_label_0000");
    let hostile = map(&[
        ("9starts_with_digit", "x"),
        ("has-dash", "x"),
        ("__reserved", "x"),
        ("", "x"),
        ("quote\"", "x"),
        (&"n".repeat(MAX_LABEL_NAME_BYTES + 1), "x"),
        ("long", &"é".repeat(MAX_LABEL_VALUE_BYTES)),
        ("control", "a\nb\r\u{0}c\"d\\e"),
        ("ok", "fine"),
    ]);
    let kept = labels(&hostile, &HashMap::new());
    let names: Vec<&str> = kept.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["dst_control", "dst_long", "dst_ok"]);
    assert_eq!(kept[0].1, "abc\"d\\e", "control characters dropped");
    assert!(kept[1].1.len() <= MAX_LABEL_VALUE_BYTES);
    assert_eq!(
        kept[1].1.chars().count(),
        MAX_LABEL_VALUE_BYTES / 2,
        "cut at a character"
    );
}
