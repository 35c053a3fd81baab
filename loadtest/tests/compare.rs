//! `loadtest compare` runs every scenario briefly and writes JSON of the
//! documented shape (and, for a list of scenarios, JSON and SVG for each);
//! missing peers are reported as skipped, not faked.
//! The ringside cases skip, with a note, when the binary is not built.
//! `--markdown` prints the one table BENCHMARKS.md opens with.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn ringside_bin() -> PathBuf {
    std::env::var_os("RINGSIDE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(loadtest::workspace::default_ringside_bin)
}

/// A path of this test process's own under the temp dir.
fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("loadtest-test-{}-{name}", std::process::id()))
}

/// Runs `loadtest compare ARGS` for 300 ms and one round; returns what it printed.
fn run_compare(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["compare", "--duration", "300ms", "--rounds", "1"])
        .args(["--idle-conns", "200"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "compare failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs one scenario against `targets` and returns the parsed JSON.
fn compare(scenario: &str, targets: &str, extra: &[&str]) -> Value {
    let path = temp_path(&format!("{scenario}-{}.json", targets.replace(',', "-")));
    let path_text = path.to_str().unwrap();
    let mut args = vec![
        "--scenario",
        scenario,
        "--targets",
        targets,
        "--json",
        path_text,
    ];
    args.extend_from_slice(extra);
    let stdout = run_compare(&args);
    assert!(
        stdout.contains(&format!("== {scenario}:")),
        "a table is printed: {stdout}"
    );
    let json = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    serde_json::from_str(&json).unwrap()
}

fn assert_measured(json: &Value, target: &str) {
    let entry = &json["targets"][target];
    assert!(
        entry.get("skipped").is_none(),
        "{target} was skipped: {entry}"
    );
    for key in ["median", "min", "max"] {
        let value = entry[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{target}.{key} is a number: {entry}"));
        assert!(value > 0.0, "{target}.{key} is positive: {entry}");
    }
    assert!(
        entry["min"].as_f64() <= entry["median"].as_f64()
            && entry["median"].as_f64() <= entry["max"].as_f64()
    );
    assert!(
        entry.get("cpu_per_unit").is_some(),
        "cpu_per_unit is present (null for direct)"
    );
}

fn assert_shape(json: &Value, scenario: &str) {
    assert_eq!(json["scenario"], scenario);
    assert!(json["unit"].as_str().is_some_and(|unit| !unit.is_empty()));
    assert!(json["targets"].is_object());
}

#[test]
fn every_scenario_runs_against_direct() {
    for scenario in ["tcp-throughput", "tcp-rr", "conn-rate", "http1", "h2"] {
        let json = compare(scenario, "direct", &[]);
        assert_shape(&json, scenario);
        assert_measured(&json, "direct");
        assert!(
            json["targets"]["direct"]["cpu_per_unit"].is_null(),
            "direct has no proxy CPU"
        );
    }
    let latency = compare("tcp-rr", "direct", &[]);
    for percentile in ["p50", "p99", "p99.9", "max"] {
        assert!(latency["targets"]["direct"]["latency_us"][percentile]
            .as_f64()
            .is_some());
    }
}

#[test]
fn a_scenario_list_writes_json_and_svg_for_each_into_the_out_dir() {
    let out_dir = temp_path("list");
    let stdout = run_compare(&[
        "--scenario",
        "http1,tcp-rr",
        "--targets",
        "direct",
        "--out-dir",
        out_dir.to_str().unwrap(),
    ]);
    for scenario in ["http1", "tcp-rr"] {
        assert!(stdout.contains(&format!("== {scenario}:")), "{stdout}");
        let json: Value = serde_json::from_str(
            &std::fs::read_to_string(out_dir.join(format!("{scenario}.json"))).unwrap(),
        )
        .unwrap();
        assert_shape(&json, scenario);
        assert_measured(&json, "direct");
        let svg = std::fs::read_to_string(out_dir.join(format!("{scenario}.svg"))).unwrap();
        assert!(
            svg.contains(r#"class="median" data-target="direct""#),
            "the chart has direct's bar: {svg}"
        );
    }
    std::fs::remove_dir_all(&out_dir).unwrap();
}

#[test]
fn idle_conns_without_a_proxy_is_skipped_with_a_reason() {
    let json = compare("idle-conns", "direct", &[]);
    assert_shape(&json, "idle-conns");
    assert!(json["targets"]["direct"]["skipped"].as_str().is_some());
}

#[test]
fn missing_peers_are_reported_as_skipped() {
    let json = compare(
        "tcp-throughput",
        "direct,ringside,haproxy,nginx",
        &[
            "--ringside",
            "/nonexistent/ringside",
            "--haproxy-bin",
            "/nonexistent/haproxy",
            "--nginx-bin",
            "/nonexistent/nginx",
        ],
    );
    assert_measured(&json, "direct");
    for peer in ["ringside", "haproxy", "nginx"] {
        let reason = json["targets"][peer]["skipped"]
            .as_str()
            .unwrap_or_else(|| panic!("{peer} skipped: {json}"));
        assert!(
            reason.contains("/nonexistent"),
            "the reason names the path: {reason}"
        );
    }
    assert_eq!(json["ringside_vs"], serde_json::json!({}));
}

#[test]
fn scenarios_run_through_ringside_when_it_is_built() {
    let ringside = ringside_bin();
    if !ringside.exists() {
        println!(
            "note: skipping, no ringside binary at {} (build it with cargo build --release)",
            ringside.display()
        );
        return;
    }
    let ringside = ringside.to_str().unwrap();
    for scenario in [
        "tcp-throughput",
        "tcp-rr",
        "conn-rate",
        "http1",
        "h2",
        "idle-conns",
    ] {
        let json = compare(scenario, "direct,ringside", &["--ringside", ringside]);
        assert_shape(&json, scenario);
        assert_measured(&json, "ringside");
        if scenario != "idle-conns" {
            assert!(json["targets"]["ringside"]["cpu_per_unit"]
                .as_f64()
                .is_some());
            assert!(json["targets"]["ringside"]["vs_direct"].as_f64().is_some());
        }
    }
}

#[test]
fn markdown_prints_one_table_with_its_commit_and_command_and_nothing_else() {
    let out_dir = temp_path("markdown");
    let stdout = run_compare(&[
        "--scenario",
        "tcp-rr,conn-rate",
        "--targets",
        "direct",
        "--markdown",
        "--out-dir",
        out_dir.to_str().unwrap(),
    ]);
    std::fs::remove_dir_all(&out_dir).unwrap();
    assert!(
        stdout.starts_with(loadtest::report::GENERATED_MARK),
        "stdout is the document alone (the plain tables go to stderr): {stdout}"
    );
    assert!(!stdout.contains("== tcp-rr:"), "{stdout}");
    for row in ["| tcp-rr |", "| conn-rate |"] {
        assert!(stdout.contains(row), "{row} in {stdout}");
    }
    assert!(
        stdout.contains("loadtest compare --duration 300ms --rounds 1 --idle-conns 200 --scenario tcp-rr,conn-rate --targets direct --markdown"),
        "the exact command: {stdout}"
    );
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let commit = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert!(!commit.is_empty(), "the test runs in a git checkout");
    assert!(
        stdout.contains(&format!("at commit `{commit}")),
        "the commit measured: {stdout}"
    );
}
