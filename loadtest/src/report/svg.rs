//! A small bar chart per scenario, written as SVG text by hand: one bar per
//! target at its median with a whisker from min to max, or for latency
//! scenarios a group of bars per target (p50, p99, p99.9 medians).
//! Skipped targets are listed under the chart with their reason.

use super::table::number;
use super::{Comparison, Summary};
use std::fmt::Write;

const WIDTH: f64 = 760.0;
const PLOT_TOP: f64 = 60.0;
const PLOT_HEIGHT: f64 = 240.0;
const PLOT_LEFT: f64 = 70.0;
const PLOT_RIGHT: f64 = 20.0;
const COLORS: [&str; 4] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One bar: its height value, optional whisker, and legend index (color).
struct Bar {
    value: f64,
    whisker: Option<(f64, f64)>,
    series: usize,
}

pub fn svg(comparison: &Comparison) -> String {
    let scenario = comparison.scenario;
    let summaries = comparison.summaries();
    let measured: Vec<(&str, &Summary)> = summaries
        .iter()
        .filter_map(|(t, s)| s.as_ref().ok().map(|s| (t.name(), s)))
        .collect();
    let skipped: Vec<String> = summaries
        .iter()
        .filter_map(|(t, s)| {
            s.as_ref()
                .err()
                .map(|r| format!("{}: skipped ({r})", t.name()))
        })
        .collect();
    let latency = measured.iter().any(|(_, s)| s.latency.is_some());
    let series: Vec<&str> = if latency {
        vec!["p50", "p99", "p99.9"]
    } else {
        vec!["median (min-max)"]
    };
    let groups: Vec<(&str, Vec<Bar>)> = measured
        .iter()
        .map(|(name, summary)| {
            let bars = match summary.latency {
                Some(p) => [p.p50, p.p99, p.p999]
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| Bar {
                        value: v,
                        whisker: None,
                        series: i,
                    })
                    .collect(),
                None => vec![Bar {
                    value: summary.median,
                    whisker: Some((summary.min, summary.max)),
                    series: 0,
                }],
            };
            (*name, bars)
        })
        .collect();
    let top = groups
        .iter()
        .flat_map(|(_, bars)| {
            bars.iter()
                .map(|b| b.whisker.map_or(b.value, |(_, max)| max.max(b.value)))
        })
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.1;
    let height = PLOT_TOP + PLOT_HEIGHT + 60.0 + 16.0 * skipped.len() as f64;
    let y = |value: f64| PLOT_TOP + PLOT_HEIGHT - (value / top).clamp(0.0, 1.0) * PLOT_HEIGHT;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!(
        "{}: {}{}",
        scenario.name(),
        scenario.unit(),
        if scenario.lower_is_better() {
            " (lower is better)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        r#"<text x="{PLOT_LEFT}" y="22" font-size="16" font-weight="bold">{}</text>"#,
        escape(&title)
    );
    let _ = writeln!(
        out,
        r##"<text x="{PLOT_LEFT}" y="40" font-size="10" fill="#555">{}</text>"##,
        escape(&comparison.setup_line())
    );
    // Axis with five gridlines.
    for step in 0..=4 {
        let value = top / 1.1 * step as f64 / 4.0;
        let line_y = y(value);
        let _ = writeln!(
            out,
            r##"<line x1="{PLOT_LEFT}" y1="{line_y:.1}" x2="{:.1}" y2="{line_y:.1}" stroke="#ddd"/>"##,
            WIDTH - PLOT_RIGHT
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            PLOT_LEFT - 6.0,
            line_y + 4.0,
            number(value)
        );
    }
    let group_width = (WIDTH - PLOT_LEFT - PLOT_RIGHT) / groups.len().max(1) as f64;
    for (index, (name, bars)) in groups.iter().enumerate() {
        let group_left = PLOT_LEFT + group_width * index as f64;
        let bar_width = (group_width * 0.7 / bars.len() as f64).min(80.0);
        let bars_left = group_left + (group_width - bar_width * bars.len() as f64) / 2.0;
        for (slot, bar) in bars.iter().enumerate() {
            let x = bars_left + bar_width * slot as f64;
            let bar_top = y(bar.value);
            let color = COLORS[if latency { bar.series } else { index } % COLORS.len()];
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{bar_top:.1}" width="{:.1}" height="{:.1}" fill="{color}"/>"#,
                bar_width - 2.0,
                PLOT_TOP + PLOT_HEIGHT - bar_top
            );
            let center = x + (bar_width - 2.0) / 2.0;
            if let Some((min, max)) = bar.whisker {
                let (low, high) = (y(min), y(max));
                let _ = writeln!(
                    out,
                    r#"<line x1="{center:.1}" y1="{low:.1}" x2="{center:.1}" y2="{high:.1}" stroke="black"/>"#
                );
                for end in [low, high] {
                    let _ = writeln!(
                        out,
                        r#"<line x1="{:.1}" y1="{end:.1}" x2="{:.1}" y2="{end:.1}" stroke="black"/>"#,
                        center - 6.0,
                        center + 6.0
                    );
                }
            }
            let label_y = bar.whisker.map_or(bar_top, |(_, max)| y(max).min(bar_top)) - 4.0;
            let _ = writeln!(
                out,
                r#"<text x="{center:.1}" y="{label_y:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                number(bar.value)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            group_left + group_width / 2.0,
            PLOT_TOP + PLOT_HEIGHT + 18.0,
            escape(name)
        );
    }
    if latency {
        for (index, label) in series.iter().enumerate() {
            let x = PLOT_LEFT + 90.0 * index as f64;
            let legend_y = PLOT_TOP + PLOT_HEIGHT + 34.0;
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{}"/>"#,
                legend_y - 9.0,
                COLORS[index]
            );
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{legend_y:.1}">{label} (us)</text>"#,
                x + 14.0
            );
        }
    }
    for (index, line) in skipped.iter().enumerate() {
        let _ = writeln!(
            out,
            r##"<text x="{PLOT_LEFT}" y="{:.1}" font-size="10" fill="#a00">{}</text>"##,
            PLOT_TOP + PLOT_HEIGHT + 52.0 + 16.0 * index as f64,
            escape(line)
        );
    }
    out.push_str("</svg>\n");
    out
}
