use super::*;
use clap::Parser;

pub(super) fn args(list: &[&str]) -> Args {
    Args::try_parse_from(std::iter::once("ringside").chain(list.iter().copied())).unwrap()
}

pub(super) fn merged(list: &[&str], toml: &str) -> Result<Config, ConfigError> {
    Config::merge(&args(list), file::FileConfig::parse(toml).unwrap())
}

#[test]
fn defaults_are_linkerds() {
    let config = merged(&[], "").unwrap();
    assert_eq!(config.admin_addr.to_string(), DEFAULT_ADMIN_ADDR);
    assert_eq!(config.backlog, 4096);
    assert_eq!(config.timeouts.connect, Duration::from_secs(1));
    assert_eq!(config.timeouts.shutdown_grace, Duration::from_secs(30));
    assert_eq!(config.forward_mode, ForwardMode::Splice);
    assert_eq!(config.timeouts.head_read, Duration::from_secs(10));
    assert_eq!(config.timeouts.client_idle, Duration::from_secs(60));
    assert_eq!(config.timeouts.response, None);
    assert_eq!(config.timeouts.opaque_idle, None);
    assert_eq!(
        config.timeouts.detect_quiet_pause,
        Duration::from_millis(300)
    );
    assert_eq!(config.max_speculative_connections, 256);
    // The runtime derives the shard count and resolves `auto`.
    assert_eq!((config.shards, config.pin), (None, Pin::Auto));
}

#[test]
fn flags_override_the_file() {
    let toml = "[runtime]\nshards = 3\nbacklog = 10\n[[route]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"127.0.0.1:2\"]\n";
    let config = merged(
        &[
            "--shards",
            "2",
            "--route",
            "127.0.0.1:5=127.0.0.1:6,127.0.0.1:7",
        ],
        toml,
    )
    .unwrap();
    assert_eq!(config.shards, Some(2));
    assert_eq!(config.backlog, 10);
    assert_eq!(config.routes.len(), 1);
    assert_eq!(config.routes[0].upstreams.len(), 2);
    assert_eq!(config.routes[0].listen.port(), 5);
}

#[test]
fn route_flag_errors_name_the_flag() {
    for spec in [
        "127.0.0.1:1",
        "127.0.0.1:1=",
        "nope=127.0.0.1:2",
        "127.0.0.1:1=nope",
    ] {
        let err = merged(&["--route", spec], "").unwrap_err().to_string();
        assert!(err.starts_with("--route"), "{spec}: {err}");
    }
}

#[test]
fn duplicate_listen_addresses_are_rejected() {
    let err = merged(
        &[
            "--route",
            "127.0.0.1:1=127.0.0.1:2",
            "--route",
            "127.0.0.1:1=127.0.0.1:3",
        ],
        "",
    )
    .unwrap_err();
    assert!(err.to_string().contains("route[1].listen"), "{err}");
}

#[test]
fn unknown_file_keys_are_errors_with_a_line() {
    let err = file::FileConfig::parse("[admin]\n\nlisen = \"x\"\n").unwrap_err();
    assert!(err.starts_with("line 3:") && err.contains("lisen"), "{err}");
}

#[test]
fn printed_config_parses_back_to_the_same_config() {
    let route = ["--route", "127.0.0.1:5=127.0.0.1:6"];
    let transparent = [
        "--outbound-listen",
        "127.0.0.1:7",
        "--inbound-listen",
        "0.0.0.0:8",
    ];
    for extra in [&["--shards", "2", "--pin", "cores"][..], &[], &transparent] {
        round_trip(&merged(&[&route[..], extra].concat(), "").unwrap());
    }
}

/// Prints `config` for `--check`, parses what was printed as a config
/// file, and merges it with no flags: the same `Config` must come out.
fn round_trip(config: &Config) {
    let printed = config.to_string();
    let file = file::FileConfig::parse(&printed).unwrap_or_else(|err| panic!("{err}\n{printed}"));
    let reparsed = Config::merge(&args(&[]), file).unwrap();
    assert_eq!(&reparsed, config, "{printed}");
}

#[test]
fn every_section_printed_parses_back_to_the_same_config() {
    let toml = "[log]\nformat = \"json\"\n\
        [runtime]\nshards = 3\npin = \"off\"\nshutdown_grace = \"1m 30s\"\n\
        [proxy]\nforward_mode = \"copy\"\nmax_connections = 9\nresponse_timeout = \"2s\"\n\
        [detect]\nopaque_ports = []\nquiet_pause = \"250ms\"\nserver_first_memory = \"0s\"\n\
        [http2]\nmax_concurrent_streams = 7\n\
        [identity]\ncert = \"c.pem\"\nkey = \"k.pem\"\ntrust_anchors = \"t.pem\"\n\
        name = \"web.ns\"\nspiffe_id = \"spiffe://cluster.local/ns/ns/sa/web\"\n\
        [outbound]\n\
        [inbound]\nlisten = \"0.0.0.0:9\"\nforward_to = \"original\"\nauthorize = \"all-authenticated\"\n\
        [[inbound.authorize_port]]\nports = [80, 81]\nauthorize = [\"a.ns\", \"*.prod\"]\n\
        [[inbound.authorize_port]]\nports = [9]\nauthorize = \"deny\"\n\
        [[route]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"127.0.0.1:2\", \"127.0.0.1:3\"]\n\
        direction = \"inbound\"\nprotocol = \"http2\"\nresponse_timeout = \"off\"\n\
        [[route]]\nlisten = \"127.0.0.1:4\"\nupstreams = [\"127.0.0.1:5432\"]\n\
        [[mesh.peer]]\nnetwork = \"10.0.0.0/8\"\nidentity = \"b.ns\"\nport = 4000\n\
        [[mesh.peer]]\nnetwork = \"192.0.2.7\"\nidentity = \"c.ns\"\n\
        [dns]\nservers = [\"127.0.0.1:5353\"]\ntimeout = \"1s\"\nattempts = 1\nrefresh = \"7s\"\n";
    let config = merged(&[], toml).unwrap();
    assert!(config.identity.is_some() && config.mesh_peers.len() == 2);
    assert_eq!(config.inbound_policy.ports.len(), 2);
    assert_eq!(config.dns.refresh, Some(Duration::from_secs(7)));
    round_trip(&config);
    // Durations are written as the file takes them.
    let printed = config.to_string();
    for line in [
        "shutdown_grace = \"1m 30s\"",
        "quiet_pause = \"250ms\"",
        "response_timeout = \"off\"",
    ] {
        assert!(printed.contains(line), "{line} in:\n{printed}");
    }
}

#[test]
fn an_inbound_policy_without_an_identity_is_refused_naming_its_key() {
    let port_rule = "[inbound]\n[[inbound.authorize_port]]\nports = [80]\nauthorize = [\"a.ns\"]\n";
    for (flags, toml, key, what) in [
        (
            &["--inbound-authorize", "deny"][..],
            "",
            "--inbound-authorize",
            "\"deny\"",
        ),
        (
            &[],
            "[inbound]\nauthorize = \"all-authenticated\"\n",
            "inbound.authorize",
            "\"all-authenticated\"",
        ),
        (
            &[],
            port_rule,
            "inbound.authorize_port[0].authorize",
            "a list of identities",
        ),
    ] {
        let err = merged(flags, toml).unwrap_err().to_string();
        let expected = format!("{key}: {what} cannot be enforced without an [identity] (");
        assert!(err.starts_with(&expected) && !err.contains('\n'), "{err}");
    }
    // Letting everyone in needs no identity; anything with one is taken.
    let open = "[inbound]\nauthorize = \"all-unauthenticated\"\n";
    assert!(merged(&[], open).is_ok());
    let identity = [
        "--identity-cert=c.pem",
        "--identity-key=k.pem",
        "--identity-trust-anchors=t.pem",
        "--identity-name=web.ns",
    ];
    let config = merged(&identity, port_rule).unwrap();
    assert_eq!(config.inbound_policy.ports.len(), 1);
}

#[test]
fn bad_values_are_one_line_errors_naming_the_key() {
    // Each value is a flag (`--key=value`) or a TOML file. A bad duration's
    // message goes on with humantime's own reason, so only its start is
    // checked (the expected text ends with ": ").
    let duration = "is not a duration like \"10s\": ";
    for (given, expected) in [
        (
            "--admin-addr=nope",
            "--admin-addr: \"nope\" is not an IP:port socket address",
        ),
        (
            "[admin]\nlisten = \"nope\"",
            "admin.listen: \"nope\" is not an IP:port socket address",
        ),
        ("--shards=0", "runtime.shards: must be at least 1"),
        (
            "[runtime]\nshards = 0",
            "runtime.shards: must be at least 1",
        ),
        (
            "--pin=always",
            "runtime.pin: expected \"auto\", \"cores\" or \"off\", got \"always\"",
        ),
        (
            "[runtime]\npin = \"on\"",
            "runtime.pin: expected \"auto\", \"cores\" or \"off\", got \"on\"",
        ),
        (
            "--log-format=xml",
            "log.format: expected \"text\" or \"json\", got \"xml\"",
        ),
        (
            "[detect]\ntimeout = \"0s\"",
            "detect.timeout: must be above 0",
        ),
        (
            "--detect-timeout=soon",
            &format!("detect.timeout: \"soon\" {duration}"),
        ),
        (
            "--opaque-ports=25,x",
            "--opaque-ports: \"x\" is not a port number",
        ),
        (
            "[detect]\nopaque_ports = [25, 0]",
            "detect.opaque_ports[1]: 0 is not a port",
        ),
        (
            "[detect]\npeek_bytes = 63",
            "detect.peek_bytes: must be between 64 and 16384",
        ),
        (
            "[detect]\nserver_first_memory = \"x\"",
            &format!("detect.server_first_memory: \"x\" {duration}"),
        ),
        ("--backlog=0", "runtime.backlog: must be at least 1"),
        (
            "--connect-timeout=0ms",
            "proxy.connect_timeout: must be above 0",
        ),
        (
            "[runtime]\nshutdown_grace = \"x\"",
            &format!("runtime.shutdown_grace: \"x\" {duration}"),
        ),
        (
            "--forward-mode=zerocopy",
            "proxy.forward_mode: expected \"splice\" or \"copy\", got \"zerocopy\"",
        ),
        (
            "[proxy]\npool_idle_timeout = \"x\"",
            &format!("proxy.pool_idle_timeout: \"x\" {duration}"),
        ),
        (
            "--head-read-timeout=0s",
            "proxy.head_read_timeout: must be above 0",
        ),
        (
            "[proxy]\nclient_idle_timeout = \"x\"",
            &format!("proxy.client_idle_timeout: \"x\" {duration}"),
        ),
        (
            "--response-timeout=never",
            &format!("proxy.response_timeout: \"never\" {duration}"),
        ),
        (
            "[[route]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"127.0.0.1:2\"]\nresponse_timeout = \"x\"",
            &format!("route[0].response_timeout: \"x\" {duration}"),
        ),
        (
            "--detect-quiet-pause=0s",
            "detect.quiet_pause: must be above 0",
        ),
        (
            "[proxy]\npipe_size_bytes = 4095",
            "proxy.pipe_size_bytes: must be between 4096 and 67108864",
        ),
        (
            "--max-connections=0",
            "proxy.max_connections: must be at least 1",
        ),
        (
            "[http2]\nmax_concurrent_streams = 0",
            "http2.max_concurrent_streams: must be at least 1",
        ),
        (
            "--http2-max-header-list-size=100",
            "http2.max_header_list_size: must be between 1024 and 16777216",
        ),
        (
            "[http2]\nmax_premature_resets = 0",
            "http2.max_premature_resets: must be at least 1",
        ),
    ] {
        let err = if given.starts_with("--") {
            merged(&[given], "")
        } else {
            merged(&[], given)
        };
        let err = err.unwrap_err().to_string();
        let matches = match expected.strip_suffix(": ") {
            Some(start) => err.starts_with(start),
            None => err == expected,
        };
        assert!(matches && !err.contains('\n'), "{given:?}: {err}");
    }
}

/// Checks the values that both precedence tests give every key with a flag,
/// one through flags, the other through the file.
fn assert_flag_keys_as_given(config: &Config) {
    assert_eq!(config.admin_addr.to_string(), "127.0.0.1:9");
    assert_eq!((config.shards, config.backlog), (Some(3), 7));
    assert_eq!(config.pin, Pin::Off);
    assert_eq!(config.timeouts.shutdown_grace, Duration::from_secs(2));
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.timeouts.connect, Duration::from_millis(250));
    assert_eq!(config.forward_mode, ForwardMode::Copy);
    assert_eq!(config.timeouts.detect, Duration::from_secs(5));
    assert_eq!(config.detect.opaque_ports, [80]);
}

#[test]
fn flags_win_over_the_file_which_is_then_not_checked() {
    let toml = "[admin]\nlisten = \"bad\"\n[runtime]\nshards = 0\npin = \"bad\"\nbacklog = 0\nshutdown_grace = \"bad\"\n\
                [log]\nformat = \"bad\"\n[proxy]\nconnect_timeout = \"bad\"\nforward_mode = \"bad\"\n\
                [detect]\ntimeout = \"bad\"\nopaque_ports = [0]\n";
    let flags = [
        "--admin-addr=127.0.0.1:9",
        "--shards=3",
        "--pin=off",
        "--backlog=7",
        "--shutdown-grace=2s",
        "--log-format=json",
        "--connect-timeout=250ms",
        "--forward-mode=copy",
        "--detect-timeout=5s",
        "--opaque-ports=80",
    ];
    assert_flag_keys_as_given(&merged(&flags, toml).unwrap());
}

#[test]
fn file_values_win_over_defaults() {
    let toml = "[admin]\nlisten = \"127.0.0.1:9\"\n[runtime]\nshards = 3\npin = \"off\"\nbacklog = 7\nshutdown_grace = \"2s\"\n\
                [log]\nformat = \"json\"\n[proxy]\nconnect_timeout = \"250ms\"\nforward_mode = \"copy\"\n\
                pipe_size_bytes = 65536\npool_idle_timeout = \"1s\"\n\
                [detect]\ntimeout = \"5s\"\nopaque_ports = [80]\npeek_bytes = 512\nserver_first_memory = \"0s\"\n";
    let config = merged(&[], toml).unwrap();
    assert_flag_keys_as_given(&config);
    // The keys that only the file sets.
    assert_eq!(config.pipe_size_bytes, 65536);
    assert_eq!(config.timeouts.pool_idle, Duration::from_secs(1));
    assert_eq!(config.detect.peek_bytes, 512);
    assert_eq!(config.detect.server_first_memory, Duration::ZERO);
}

#[test]
fn limits_come_from_flags_over_the_file_over_defaults() {
    let defaults = merged(&[], "").unwrap();
    assert_eq!(defaults.max_connections, None);
    assert_eq!(defaults.http2, Http2Config::default());
    assert_eq!(defaults.http2.max_concurrent_streams, 100);
    let toml = "[proxy]\nmax_connections = 10\n[http2]\nmax_concurrent_streams = 5\n\
                max_header_list_size = 2048\nmax_pending_accept_reset_streams = 3\n\
                max_local_error_reset_streams = 4\nmax_premature_resets = 6\n";
    let config = merged(
        &["--max-connections=7", "--http2-max-premature-resets=9"],
        toml,
    )
    .unwrap();
    assert_eq!(config.max_connections, Some(7));
    let expected = Http2Config {
        max_concurrent_streams: 5,
        max_header_list_size: 2048,
        max_pending_accept_reset_streams: 3,
        max_local_error_reset_streams: 4,
        max_premature_resets: 9,
    };
    assert_eq!(config.http2, expected);
    round_trip(&config);
}

#[test]
fn route_response_timeouts_override_the_proxy_one() {
    let toml = "[proxy]\nresponse_timeout = \"2s\"\nopaque_idle_timeout = \"off\"\n\
                [[route]]\nlisten = \"127.0.0.1:1\"\nupstreams = [\"127.0.0.1:2\"]\n\
                [[route]]\nlisten = \"127.0.0.1:3\"\nupstreams = [\"127.0.0.1:2\"]\nresponse_timeout = \"500ms\"\n\
                [[route]]\nlisten = \"127.0.0.1:4\"\nupstreams = [\"127.0.0.1:2\"]\nresponse_timeout = \"off\"\n";
    let config = merged(&[], toml).unwrap();
    let timeouts: Vec<_> = config.routes.iter().map(|r| r.response_timeout).collect();
    let expected = [
        Some(Duration::from_secs(2)),
        Some(Duration::from_millis(500)),
        None,
    ];
    assert_eq!(timeouts, expected);
    assert_eq!(config.timeouts.opaque_idle, None);
    // The printed config keeps each route's own value.
    round_trip(&config);
}

#[test]
fn timeout_flags_set_their_keys() {
    let config = merged(
        &[
            "--head-read-timeout=1s",
            "--client-idle-timeout=2s",
            "--response-timeout=3s",
            "--opaque-idle-timeout=4s",
            "--detect-quiet-pause=50ms",
            "--max-speculative-connections=0",
        ],
        "",
    )
    .unwrap();
    let expected = Timeouts {
        head_read: Duration::from_secs(1),
        client_idle: Duration::from_secs(2),
        response: Some(Duration::from_secs(3)),
        opaque_idle: Some(Duration::from_secs(4)),
        detect_quiet_pause: Duration::from_millis(50),
        ..merged(&[], "").unwrap().timeouts
    };
    assert_eq!(config.timeouts, expected);
    assert_eq!(config.max_speculative_connections, 0);
}

#[test]
fn transparent_listeners_are_off_unless_their_section_or_flag_is_given() {
    assert!(merged(&[], "").unwrap().transparent.is_empty());
    let config = merged(&[], "[outbound]\n[inbound]\n").unwrap();
    let listens: Vec<String> = config
        .transparent
        .iter()
        .map(|t| t.listen.to_string())
        .collect();
    assert_eq!(listens, [DEFAULT_OUTBOUND_LISTEN, DEFAULT_INBOUND_LISTEN]);
    assert_eq!(config.transparent[0].forward_to, ForwardTo::Original);
    // Inbound forwards to the original destination, as Linkerd does.
    assert_eq!(config.transparent[1].forward_to, ForwardTo::Original);
    let config = merged(
        &[
            "--inbound-listen",
            "127.0.0.1:5",
            "--inbound-forward-to",
            "localhost",
        ],
        "[inbound]\nlisten = \"127.0.0.1:6\"\nforward_to = \"original\"\n",
    )
    .unwrap();
    assert_eq!(config.transparent.len(), 1);
    assert_eq!(config.transparent[0].direction, Direction::Inbound);
    assert_eq!(config.transparent[0].listen.to_string(), "127.0.0.1:5");
    assert_eq!(config.transparent[0].forward_to, ForwardTo::Localhost);
}

#[test]
fn transparent_mistakes_name_their_key() {
    let err = merged(&[], "[inbound]\nforward_to = \"elsewhere\"\n").unwrap_err();
    assert!(err.to_string().starts_with("inbound.forward_to:"), "{err}");
    let err = merged(&["--outbound-listen", "4140"], "").unwrap_err();
    assert!(err.to_string().starts_with("outbound.listen:"), "{err}");
    assert!(file::FileConfig::parse("[outbound]\nport = 1\n").is_err());
    let err = merged(&["--route", "127.0.0.1:4140=127.0.0.1:1"], "[outbound]\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "outbound.listen: 127.0.0.1:4140 is used by another listener"
    );
    let port_zero = [
        "--route",
        "127.0.0.1:0=127.0.0.1:1",
        "--outbound-listen",
        "127.0.0.1:0",
    ];
    assert!(merged(&port_zero, "").is_ok());
}

#[test]
fn forward_to_localhost_keeps_the_original_port() {
    let original: SocketAddr = "10.1.2.3:8080".parse().unwrap();
    assert_eq!(
        ForwardTo::Localhost.upstream(original).to_string(),
        "127.0.0.1:8080"
    );
    assert_eq!(ForwardTo::Original.upstream(original), original);
}
