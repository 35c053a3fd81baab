//! The report of a comparison built from known rounds, so nothing here
//! depends on the machine: each scenario's chart draws its headline figure
//! (the JSON's `median`) with a min–max mark, titled and labelled with its
//! unit, and the JSON keeps every key earlier results have.

use loadtest::provenance::Provenance;
use loadtest::report::{self, Comparison, Outcome, Round};
use loadtest::scenarios::{self, LoadParams, Measurement, Percentiles, ScenarioKind};
use loadtest::targets::TargetKind;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// Headline figures per round, in round order, and what they reduce to.
const RINGSIDE_ROUNDS: [f64; 3] = [100.0, 300.0, 200.0];
const NGINX_ROUNDS: [f64; 3] = [50.0, 70.0, 60.0];
/// Latency percentiles unlike any headline figure, so a chart that drew
/// them instead would be caught.
const LATENCY: Percentiles = Percentiles {
    p50: 11.0,
    p99: 22.0,
    p999: 33.0,
    max: 44.0,
};

/// The scenarios whose client records latency percentiles.
fn records_latency(scenario: ScenarioKind) -> bool {
    matches!(
        scenario,
        ScenarioKind::TcpRr | ScenarioKind::Http1 | ScenarioKind::H2
    )
}

fn rounds(figures: [f64; 3], scenario: ScenarioKind) -> Outcome {
    let latency = records_latency(scenario);
    Outcome::Measured(
        figures
            .iter()
            .map(|&figure| Round {
                measurement: Measurement {
                    figure,
                    work_units: 2.0,
                    latency: latency.then_some(LATENCY),
                    extra: vec![("connections", 2.0)],
                },
                cpu_seconds: Some(1.0),
            })
            .collect(),
    )
}

/// ringside and nginx measured over three rounds, haproxy skipped.
fn comparison(scenario: ScenarioKind) -> Comparison {
    Comparison {
        scenario,
        outcomes: vec![
            (TargetKind::Ringside, rounds(RINGSIDE_ROUNDS, scenario)),
            (
                TargetKind::Haproxy,
                Outcome::Skipped("not installed".into()),
            ),
            (TargetKind::Nginx, rounds(NGINX_ROUNDS, scenario)),
        ],
        rounds: 3,
        duration: Duration::from_secs(1),
        shards: 1,
        params: LoadParams {
            duration: Duration::from_secs(1),
            streams: 2,
            connections: 2,
            rate: 5000,
            size: 128,
            h2_streams: 32,
            idle_conns: 100,
        },
        notes: Vec::new(),
    }
}

/// The attributes of each `<TAG class="CLASS" ...>` in `svg`, in order.
fn elements(svg: &str, tag: &str, class: &str) -> Vec<HashMap<String, String>> {
    let opening = format!(r#"<{tag} class="{class}""#);
    svg.match_indices(&opening)
        .map(|(start, _)| {
            let head = &svg[start..];
            let head = &head[..head.find('>').expect("element closes")];
            let mut attributes = HashMap::new();
            let mut rest = head;
            while let Some(equals) = rest.find("=\"") {
                let name = rest[..equals].rsplit(' ').next().unwrap().to_string();
                let value_and_rest = &rest[equals + 2..];
                let end = value_and_rest.find('"').expect("attribute closes");
                attributes.insert(name, value_and_rest[..end].to_string());
                rest = &value_and_rest[end + 1..];
            }
            attributes
        })
        .collect()
}

/// The text of the first `<text class="CLASS" ...>` in `svg`.
fn text_of(svg: &str, class: &str) -> String {
    let start = svg
        .find(&format!(r#"<text class="{class}""#))
        .unwrap_or_else(|| panic!("a {class} text in {svg}"));
    let body = &svg[start..];
    let body = &body[body.find('>').unwrap() + 1..];
    body[..body.find("</text>").unwrap()].to_string()
}

fn number(attributes: &HashMap<String, String>, name: &str) -> f64 {
    attributes[name]
        .parse()
        .unwrap_or_else(|_| panic!("{name} is a number: {attributes:?}"))
}

#[test]
fn each_chart_draws_the_headline_median_with_its_min_max() {
    for scenario in scenarios::ALL {
        let comparison = comparison(scenario);
        let svg = report::svg(&comparison);
        let json = report::json(&comparison);
        let unit = scenario.unit();
        assert!(
            text_of(&svg, "title").contains(unit),
            "{}: the title names {unit}",
            scenario.name()
        );
        assert_eq!(text_of(&svg, "axis-label"), unit);

        let bars = elements(&svg, "rect", "median");
        let ranges = elements(&svg, "line", "range");
        let drawn: Vec<&str> = bars.iter().map(|bar| bar["data-target"].as_str()).collect();
        assert_eq!(drawn, ["ringside", "nginx"], "one bar per measured target");
        assert_eq!(ranges.len(), bars.len(), "a min–max mark on every bar");
        assert!(svg.contains("haproxy: skipped (not installed)"));

        for ((bar, range), (median, min, max)) in bars
            .iter()
            .zip(&ranges)
            .zip([(200.0, 100.0, 300.0), (60.0, 50.0, 70.0)])
        {
            let target = &bar["data-target"];
            assert_eq!(&range["data-target"], target);
            let entry = &json["targets"][target];
            assert_eq!(number(bar, "data-median"), median, "{target}'s bar");
            assert_eq!(entry["median"].as_f64(), Some(median), "the JSON's median");
            assert_eq!(number(range, "data-min"), min);
            assert_eq!(number(range, "data-max"), max);
            assert_eq!(entry["min"].as_f64(), Some(min));
            assert_eq!(entry["max"].as_f64(), Some(max));

            // Drawn to the same scale: heights above the baseline stand as
            // the values do (to the 0.1 px the coordinates are written at).
            let baseline = number(bar, "y") + number(bar, "height");
            let height_of = |y: f64| baseline - y;
            let max_height = height_of(number(range, "y2"));
            for (drawn_height, value) in [
                (number(bar, "height"), median),
                (height_of(number(range, "y1")), min),
            ] {
                assert!(
                    (drawn_height - max_height * value / max).abs() < 0.3,
                    "{}: {target} drawn {drawn_height} px high for {value} where {max} is {max_height} px",
                    scenario.name()
                );
            }
        }
    }
}

fn has_key(object: &Value, key: &str, scenario: ScenarioKind) {
    assert!(
        object.get(key).is_some(),
        "{}: {key} in {object}",
        scenario.name()
    );
}

#[test]
fn json_keeps_its_keys_and_adds_each_rounds_figure() {
    for scenario in scenarios::ALL {
        let json = report::json(&comparison(scenario));
        for key in [
            "scenario",
            "unit",
            "lower_is_better",
            "cpu_unit",
            "rounds",
            "duration_ms",
            "shards",
            "setup",
            "notes",
            "targets",
            "ringside_vs",
        ] {
            has_key(&json, key, scenario);
        }
        assert_eq!(json["unit"], scenario.unit());
        assert_eq!(json["rounds"], 3);
        let ringside = &json["targets"]["ringside"];
        for key in [
            "median",
            "min",
            "max",
            "cpu_per_unit",
            "vs_direct",
            "connections",
        ] {
            has_key(ringside, key, scenario);
        }
        assert_eq!(ringside["cpu_per_unit"].as_f64(), Some(0.5));
        assert_eq!(
            ringside["per_round"],
            serde_json::json!(RINGSIDE_ROUNDS),
            "each round's figure, in round order"
        );
        assert_eq!(json["targets"]["haproxy"]["skipped"], "not installed");
        assert_eq!(json["ringside_vs"]["nginx"].as_f64(), Some(200.0 / 60.0));
        let latency = &ringside["latency_us"];
        if records_latency(scenario) {
            for (key, value) in [("p50", 11.0), ("p99", 22.0), ("p99.9", 33.0), ("max", 44.0)] {
                assert_eq!(latency[key].as_f64(), Some(value), "latency_us.{key}");
            }
        } else {
            assert_eq!(latency, &Value::Null);
        }
    }
}

fn provenance() -> Provenance {
    Provenance {
        started: "2026-12-06T12:00:00Z".into(),
        commit: "abc1234".into(),
        machine: "Test CPU, Linux 6.0, 1 GiB".into(),
        cpus: 2,
        load_average: Some(0.25),
        peers: vec!["nginx/1.22.1".into()],
        command: "target/release/loadtest compare --all --markdown".into(),
    }
}

/// The cells of each `| ... |` line, header and rule included.
fn markdown_rows(markdown: &str) -> Vec<Vec<String>> {
    markdown
        .lines()
        .filter(|line| line.starts_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn markdown_is_one_table_of_every_scenario_headed_by_when_where_and_how() {
    let comparisons = [
        comparison(ScenarioKind::TcpThroughput),
        comparison(ScenarioKind::TcpRr),
        comparison(ScenarioKind::IdleConns),
    ];
    let provenance = provenance();
    let markdown = report::markdown(&comparisons, &provenance);

    assert!(markdown.starts_with(report::GENERATED_MARK), "{markdown}");
    assert!(
        markdown.trim_end().ends_with(report::GENERATED_END),
        "{markdown}"
    );
    for fact in [
        &provenance.started,
        &provenance.commit,
        &provenance.machine,
        &provenance.peers[0],
    ] {
        assert!(markdown.contains(fact.as_str()), "{fact} in {markdown}");
    }
    assert!(
        markdown.contains("on 2 CPUs (Test CPU, Linux 6.0, 1 GiB), load average 0.25 at the start")
    );
    assert!(
        !markdown.contains("Provisional"),
        "a quiet start: {markdown}"
    );
    assert!(
        markdown.contains(&format!("```sh\n{}\n```", provenance.command)),
        "the command, ready to copy: {markdown}"
    );

    let rows = markdown_rows(&markdown);
    let header = [
        "scenario",
        "unit",
        "ringside",
        "haproxy",
        "nginx",
        "ringside / haproxy",
        "ringside / nginx",
        "ringside CPU",
        "haproxy CPU",
        "nginx CPU",
    ];
    assert_eq!(rows[0], header);
    assert_eq!(rows.len(), 2 + comparisons.len(), "one row per scenario");
    for row in &rows {
        assert_eq!(
            row.len(),
            header.len(),
            "every row fills the header: {row:?}"
        );
    }
    // Medians 200 and 60; CPU 1 s over 2 units of work each round.
    assert_eq!(
        rows[2],
        [
            "tcp-throughput",
            "Gbit/s",
            "200",
            "–",
            "60.0",
            "–",
            "3.33",
            "0.500 s/GB",
            "–",
            "0.500 s/GB"
        ]
    );
    assert_eq!(rows[3][0], "tcp-rr");
    assert_eq!(rows[3][1], "p99 latency (us), lower is better");
    assert_eq!(rows[3][7], "0.500 s/1k req");
    assert_eq!(rows[4][7], "–", "idle-conns has no CPU per unit");

    assert!(
        markdown.contains("- tcp-rr: haproxy not measured: not installed"),
        "a skipped target says why, per scenario: {markdown}"
    );
    assert!(markdown.contains("- tcp-rr: 2 connections, 5000 req/s offered"));
}

#[test]
fn markdown_from_a_busy_machine_says_it_is_provisional() {
    let comparisons = [comparison(ScenarioKind::Http1)];
    let busy = Provenance {
        load_average: Some(1.0),
        ..provenance()
    };
    let markdown = report::markdown(&comparisons, &busy);
    assert!(
        markdown
            .contains("**Provisional: the machine was busy.** Its load average was 1.00 on 2 CPUs"),
        "{markdown}"
    );
    let unknown = Provenance {
        load_average: None,
        ..provenance()
    };
    let markdown = report::markdown(&comparisons, &unknown);
    assert!(
        markdown.contains("load average unknown at the start"),
        "{markdown}"
    );
    assert!(!markdown.contains("Provisional"), "{markdown}");
}
