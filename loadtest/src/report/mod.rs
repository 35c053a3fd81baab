//! What a comparison found, summarised per target (median, min, max over the
//! rounds), and written as a table, as JSON and as an SVG chart; several
//! scenarios together as one Markdown table for BENCHMARKS.md.

mod markdown;
mod svg;
mod table;

use crate::scenarios::{LoadParams, Measurement, Percentiles, ScenarioKind};
use crate::targets::TargetKind;
use serde_json::{json, Map, Value};
use std::time::Duration;

pub use markdown::{markdown, GENERATED_END, GENERATED_MARK};
pub use svg::svg;
pub use table::table;

/// One round of one target.
#[derive(Clone, Debug)]
pub struct Round {
    pub measurement: Measurement,
    /// The proxy's CPU seconds during the round; `None` for `direct`.
    pub cpu_seconds: Option<f64>,
}

#[derive(Clone, Debug)]
pub enum Outcome {
    /// Not measured, and why (not installed, unsupported, failed).
    Skipped(String),
    Measured(Vec<Round>),
}

/// Everything one `compare` of one scenario produced.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub scenario: ScenarioKind,
    /// Targets in the order given on the command line.
    pub outcomes: Vec<(TargetKind, Outcome)>,
    pub rounds: usize,
    pub duration: Duration,
    pub shards: usize,
    pub params: LoadParams,
    pub notes: Vec<String>,
}

/// The rounds of one target reduced to the numbers the report shows.
#[derive(Clone, Debug)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// The headline figure of each round, in round order: the spread the
    /// median hides, and what the chart's min–max mark spans.
    pub per_round: Vec<f64>,
    pub cpu_per_unit: Option<f64>,
    /// Median of each percentile over the rounds.
    pub latency: Option<Percentiles>,
    /// Median of each extra number over the rounds.
    pub extra: Vec<(&'static str, f64)>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

impl Summary {
    pub fn of(rounds: &[Round]) -> Option<Self> {
        if rounds.is_empty() {
            return None;
        }
        let figures: Vec<f64> = rounds.iter().map(|r| r.measurement.figure).collect();
        let cpu: Vec<f64> = rounds
            .iter()
            .filter_map(|r| Some(r.cpu_seconds? / r.measurement.work_units))
            .filter(|v| v.is_finite())
            .collect();
        let latency = rounds[0].measurement.latency.map(|_| {
            let each = |pick: fn(&Percentiles) -> f64| {
                median(
                    rounds
                        .iter()
                        .filter_map(|r| r.measurement.latency.as_ref().map(pick))
                        .collect(),
                )
            };
            Percentiles {
                p50: each(|p| p.p50),
                p99: each(|p| p.p99),
                p999: each(|p| p.p999),
                max: each(|p| p.max),
            }
        });
        let extra = rounds[0]
            .measurement
            .extra
            .iter()
            .enumerate()
            .map(|(index, (name, _))| {
                (
                    *name,
                    median(
                        rounds
                            .iter()
                            .map(|r| r.measurement.extra[index].1)
                            .collect(),
                    ),
                )
            })
            .collect();
        Some(Self {
            median: median(figures.clone()),
            min: figures.iter().copied().fold(f64::INFINITY, f64::min),
            max: figures.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            per_round: figures,
            cpu_per_unit: (!cpu.is_empty()).then(|| median(cpu)),
            latency,
            extra,
        })
    }
}

impl Comparison {
    /// Targets with their summary, or the reason they have none.
    pub fn summaries(&self) -> Vec<(TargetKind, Result<Summary, String>)> {
        self.outcomes
            .iter()
            .map(|(target, outcome)| {
                let summary = match outcome {
                    Outcome::Skipped(reason) => Err(reason.clone()),
                    Outcome::Measured(rounds) => {
                        Summary::of(rounds).ok_or_else(|| "no rounds ran".to_string())
                    }
                };
                (*target, summary)
            })
            .collect()
    }

    fn median_of(&self, wanted: TargetKind) -> Option<f64> {
        self.summaries()
            .into_iter()
            .find(|(target, _)| *target == wanted)?
            .1
            .ok()
            .map(|s| s.median)
    }

    /// `of`'s median over `over`'s, when both were measured.
    pub fn ratio(&self, of: TargetKind, over: TargetKind) -> Option<f64> {
        Some(self.median_of(of)? / self.median_of(over)?)
    }

    /// Each target's median over direct's.
    pub fn vs_direct(&self, target: TargetKind) -> Option<f64> {
        self.ratio(target, TargetKind::Direct)
    }

    /// ringside's median over each measured peer's.
    pub fn ringside_vs_peers(&self) -> Vec<(TargetKind, f64)> {
        let Some(ringside) = self.median_of(TargetKind::Ringside) else {
            return Vec::new();
        };
        [TargetKind::Haproxy, TargetKind::Nginx]
            .into_iter()
            .filter_map(|peer| Some((peer, ringside / self.median_of(peer)?)))
            .collect()
    }

    /// How the load client ran, in a few words.
    pub fn client(&self) -> String {
        let p = &self.params;
        match self.scenario {
            ScenarioKind::TcpThroughput => format!("{} streams", p.streams),
            ScenarioKind::TcpRr => format!(
                "{} connections, {} req/s offered, {} B messages",
                p.connections, p.rate, p.size
            ),
            ScenarioKind::ConnRate => format!("{} client threads", p.connections),
            ScenarioKind::Http1 => format!("{} keep-alive connections", p.connections),
            ScenarioKind::H2 => format!("{} streams on 1 connection", p.h2_streams),
            ScenarioKind::IdleConns => format!("{} idle connections", p.idle_conns),
            ScenarioKind::IdleHttp1 => {
                format!(
                    "{} idle keep-alive connections, one request each",
                    p.idle_conns
                )
            }
        }
    }

    /// How the proxies were sized and the client ran, for the reader of a table.
    pub fn setup_line(&self) -> String {
        format!(
            "{} rounds x {}, targets interleaved; proxies sized to {} (ringside --shards, haproxy nbthread, nginx worker_processes); client: {}",
            self.rounds,
            humantime::format_duration(self.duration),
            self.shards,
            self.client()
        )
    }
}

fn finite(value: f64) -> Value {
    if value.is_finite() {
        json!(value)
    } else {
        Value::Null
    }
}

/// `{"scenario", "unit", "targets": {"<name>": {"median", "min", "max", "per_round", "cpu_per_unit", ...}}}`;
/// a skipped target is `{"skipped": "reason"}`. Keys are only ever added, so
/// that results from earlier runs stay comparable.
pub fn json(comparison: &Comparison) -> Value {
    let mut targets = Map::new();
    for (target, summary) in comparison.summaries() {
        let entry = match summary {
            Err(reason) => json!({ "skipped": reason }),
            Ok(summary) => {
                let mut entry = json!({
                    "median": finite(summary.median),
                    "min": finite(summary.min),
                    "max": finite(summary.max),
                    "per_round": summary.per_round.iter().copied().map(finite).collect::<Vec<_>>(),
                    "cpu_per_unit": summary.cpu_per_unit.map(finite).unwrap_or(Value::Null),
                    "vs_direct": comparison.vs_direct(target).map(finite).unwrap_or(Value::Null),
                });
                if let Some(p) = summary.latency {
                    entry["latency_us"] =
                        json!({ "p50": p.p50, "p99": p.p99, "p99.9": p.p999, "max": p.max });
                }
                for (name, value) in &summary.extra {
                    entry[*name] = finite(*value);
                }
                entry
            }
        };
        targets.insert(target.name().to_string(), entry);
    }
    let ringside_vs: Map<String, Value> = comparison
        .ringside_vs_peers()
        .into_iter()
        .map(|(peer, ratio)| (peer.name().to_string(), finite(ratio)))
        .collect();
    json!({
        "scenario": comparison.scenario.name(),
        "unit": comparison.scenario.unit(),
        "lower_is_better": comparison.scenario.lower_is_better(),
        "cpu_unit": comparison.scenario.cpu_unit(),
        "rounds": comparison.rounds,
        "duration_ms": comparison.duration.as_millis() as u64,
        "shards": comparison.shards,
        "setup": comparison.setup_line(),
        "notes": comparison.notes,
        "targets": targets,
        "ringside_vs": ringside_vs,
    })
}
