//! `loadtest compare` takes one scenario, a comma-separated list, or
//! `--all`, and sends each result where the user can find it.

use clap::Parser;
use loadtest::cli::{Cli, Command, CompareArgs, ScenarioRun};
use loadtest::scenarios::{self, ScenarioKind};
use std::path::PathBuf;

fn parse(args: &[&str]) -> Result<CompareArgs, clap::Error> {
    let cli = Cli::try_parse_from(["loadtest", "compare"].iter().chain(args))?;
    match cli.command {
        Command::Compare(args) => Ok(*args),
        other => panic!("parsed as {other:?}"),
    }
}

fn into_out_dir(out_dir: &str, scenario: ScenarioKind) -> ScenarioRun {
    let out_dir = PathBuf::from(out_dir);
    ScenarioRun {
        scenario,
        json: Some(out_dir.join(format!("{}.json", scenario.name()))),
        svg: Some(out_dir.join(format!("{}.svg", scenario.name()))),
    }
}

#[test]
fn a_scenario_list_writes_each_into_the_out_dir() {
    let args = parse(&["--scenario", "http1,tcp-rr", "--out-dir", "/tmp/results"]).unwrap();
    assert_eq!(args.scenario, [ScenarioKind::Http1, ScenarioKind::TcpRr]);
    assert_eq!(
        args.runs().unwrap(),
        [
            into_out_dir("/tmp/results", ScenarioKind::Http1),
            into_out_dir("/tmp/results", ScenarioKind::TcpRr),
        ]
    );
}

#[test]
fn one_scenario_writes_where_json_and_svg_say() {
    let args = parse(&["--scenario", "h2", "--json", "a.json", "--svg", "a.svg"]).unwrap();
    assert_eq!(
        args.runs().unwrap(),
        [ScenarioRun {
            scenario: ScenarioKind::H2,
            json: Some("a.json".into()),
            svg: Some("a.svg".into()),
        }]
    );
    let repeated = parse(&["--scenario", "h2,h2", "--json", "a.json"]).unwrap();
    assert_eq!(repeated.runs().unwrap().len(), 1, "a scenario runs once");
}

#[test]
fn all_runs_every_scenario_into_the_out_dir() {
    let args = parse(&["--all", "--out-dir", "out"]).unwrap();
    let expected: Vec<ScenarioRun> = scenarios::ALL
        .into_iter()
        .map(|scenario| into_out_dir("out", scenario))
        .collect();
    assert_eq!(args.runs().unwrap(), expected);
}

#[test]
fn foreseeable_mistakes_are_refused() {
    let several_into_one_file = parse(&["--scenario", "http1,h2", "--json", "a.json"])
        .unwrap()
        .runs()
        .unwrap_err()
        .to_string();
    assert!(
        several_into_one_file.contains("--out-dir"),
        "the error says where results go: {several_into_one_file}"
    );
    assert!(parse(&["--all", "--svg", "a.svg"]).unwrap().runs().is_err());
    assert!(parse(&["--all", "--scenario", "http1"]).is_err());
    assert!(parse(&[]).is_err(), "a scenario or --all is required");
    assert!(parse(&["--scenario", "http1,nope"]).is_err());
}

/// Written from scratch here rather than read from the crate, so that this
/// test says where results must go, not where the code happens to put them.
fn expected_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .join("target"),
    }
}

#[test]
fn without_an_out_dir_results_go_under_target_not_into_the_source_tree() {
    let results = expected_target_dir().join("loadtest-results");
    let runs = parse(&["--all"]).unwrap().runs().unwrap();
    assert_eq!(runs.len(), scenarios::ALL.len());
    for run in runs {
        for path in [run.json.unwrap(), run.svg.unwrap()] {
            assert_eq!(
                path.parent(),
                Some(results.as_path()),
                "{} is written under {}",
                path.display(),
                results.display()
            );
        }
    }
}
