use super::*;
use clap::Parser;

fn args(list: &[&str]) -> Args {
    Args::try_parse_from(std::iter::once("ringside").chain(list.iter().copied())).unwrap()
}

fn merged(list: &[&str], toml: &str) -> Result<Config, ConfigError> {
    Config::merge(&args(list), file::FileConfig::parse(toml).unwrap())
}

#[test]
fn defaults_are_linkerds() {
    let config = merged(&[], "").unwrap();
    assert_eq!(config.admin_addr.to_string(), DEFAULT_ADMIN_ADDR);
    assert_eq!(config.backlog, 4096);
    assert_eq!(config.connect_timeout, Duration::from_secs(1));
    assert_eq!(config.shutdown_grace, Duration::from_secs(30));
    assert_eq!(config.forward_mode, ForwardMode::Splice);
    assert!(config.shards >= 1);
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
    assert_eq!(config.shards, 2);
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
    let config = merged(&["--route", "127.0.0.1:5=127.0.0.1:6", "--shards", "2"], "").unwrap();
    let reparsed = Config::merge(
        &args(&[]),
        file::FileConfig::parse(&config.to_string()).unwrap(),
    )
    .unwrap();
    assert_eq!(reparsed, config);
}
