//! One bar chart per scenario, written as SVG text by hand: a bar per
//! measured target at the median of the scenario's headline figure (the
//! number the table and the JSON report, in [`ScenarioKind::unit`]) and a
//! mark from its lowest to its highest round, so the chart shows how far the
//! rounds disagreed as well as where they met. One quantity per axis: the
//! latency percentiles of the request scenarios stay in the table and the
//! JSON, where they cannot be read against a req/s axis.
//!
//! Bars and marks carry `class` and `data-*` attributes with the exact
//! values, so a test or a script reads the chart back without measuring
//! pixels. Skipped targets are listed under the chart with their reason.
//!
//! [`ScenarioKind::unit`]: crate::scenarios::ScenarioKind::unit

use super::table::number;
use super::Comparison;
use crate::targets::TargetKind;
use std::fmt::Write;

const WIDTH: f64 = 760.0;
const PLOT_TOP: f64 = 60.0;
const PLOT_HEIGHT: f64 = 240.0;
const PLOT_BOTTOM: f64 = PLOT_TOP + PLOT_HEIGHT;
/// Room for the tick labels and, turned upright, the unit.
const PLOT_LEFT: f64 = 84.0;
const PLOT_RIGHT: f64 = 20.0;
/// Half the width of the caps on a min–max mark.
const CAP_HALF_WIDTH: f64 = 6.0;

/// The same color for a target in every chart, so ringside is found at a glance.
fn color(target: TargetKind) -> &'static str {
    match target {
        TargetKind::Direct => "#9c9c9c",
        TargetKind::Ringside => "#f28e2b",
        TargetKind::Haproxy => "#4e79a7",
        TargetKind::Nginx => "#59a14f",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The axis' top and tick step: a step of 1, 2, 2.5 or 5 times a power of
/// ten, at most six of them up to `highest`, so tick labels are round numbers.
fn axis(highest: f64) -> (f64, f64) {
    if !highest.is_finite() || highest <= 0.0 {
        return (1.0, 0.25);
    }
    let rough_step = highest / 6.0;
    let power = 10f64.powf(rough_step.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|multiple| multiple * power)
        .find(|step| *step >= rough_step)
        .unwrap_or(10.0 * power);
    ((highest / step).ceil() * step, step)
}

pub fn svg(comparison: &Comparison) -> String {
    let scenario = comparison.scenario;
    let unit = scenario.unit();
    let rounds = comparison.rounds.max(1);
    let summaries = comparison.summaries();
    let skipped: Vec<String> = summaries
        .iter()
        .filter_map(|(t, s)| {
            s.as_ref()
                .err()
                .map(|r| format!("{}: skipped ({r})", t.name()))
        })
        .collect();
    let measured: Vec<_> = summaries
        .iter()
        .filter_map(|(t, s)| s.as_ref().ok().map(|s| (*t, s)))
        .collect();
    let highest = measured
        .iter()
        .flat_map(|(_, s)| [s.median, s.max])
        .filter(|v| v.is_finite())
        .fold(0.0_f64, f64::max);
    let (top, step) = axis(highest);
    let y = |value: f64| {
        let fraction = (value / top).clamp(0.0, 1.0);
        PLOT_BOTTOM - if fraction.is_nan() { 0.0 } else { fraction } * PLOT_HEIGHT
    };
    let height = PLOT_BOTTOM + 60.0 + 16.0 * skipped.len() as f64;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let better = scenario.better();
    let _ = writeln!(
        out,
        r#"<text class="title" x="{PLOT_LEFT}" y="22" font-size="16" font-weight="bold">{}</text>"#,
        escape(&format!(
            "{}: {unit}, median of {rounds} rounds ({better})",
            scenario.name()
        ))
    );
    let _ = writeln!(
        out,
        r##"<text x="{PLOT_LEFT}" y="40" font-size="10" fill="#555">{}</text>"##,
        escape(&comparison.setup_line())
    );
    let axis_middle = PLOT_TOP + PLOT_HEIGHT / 2.0;
    let _ = writeln!(
        out,
        r#"<text class="axis-label" x="16" y="{axis_middle}" transform="rotate(-90 16 {axis_middle})" text-anchor="middle">{}</text>"#,
        escape(unit)
    );
    for step_index in 0..=(top / step).round() as usize {
        let tick = step * step_index as f64;
        let tick_y = y(tick);
        let _ = writeln!(
            out,
            r##"<line x1="{PLOT_LEFT}" y1="{tick_y:.1}" x2="{:.1}" y2="{tick_y:.1}" stroke="#ddd"/>"##,
            WIDTH - PLOT_RIGHT
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            PLOT_LEFT - 6.0,
            tick_y + 4.0,
            number(tick)
        );
    }

    let slot_width = (WIDTH - PLOT_LEFT - PLOT_RIGHT) / measured.len().max(1) as f64;
    let bar_width = (slot_width * 0.6).min(90.0);
    for (index, (target, summary)) in measured.iter().enumerate() {
        let name = target.name();
        let center = PLOT_LEFT + slot_width * (index as f64 + 0.5);
        let bar_top = y(summary.median);
        let _ = writeln!(
            out,
            r#"<rect class="median" data-target="{name}" data-median="{}" x="{:.1}" y="{bar_top:.1}" width="{bar_width:.1}" height="{:.1}" fill="{}"><title>{name}: median {} {}</title></rect>"#,
            summary.median,
            center - bar_width / 2.0,
            PLOT_BOTTOM - bar_top,
            color(*target),
            number(summary.median),
            escape(unit)
        );
        let (low, high) = (y(summary.min), y(summary.max));
        let _ = writeln!(
            out,
            r#"<line class="range" data-target="{name}" data-min="{}" data-max="{}" x1="{center:.1}" y1="{low:.1}" x2="{center:.1}" y2="{high:.1}" stroke="black"><title>{name}: min {} max {} over {} rounds</title></line>"#,
            summary.min,
            summary.max,
            number(summary.min),
            number(summary.max),
            summary.per_round.len()
        );
        for cap in [low, high] {
            let _ = writeln!(
                out,
                r#"<line class="range-cap" x1="{:.1}" y1="{cap:.1}" x2="{:.1}" y2="{cap:.1}" stroke="black"/>"#,
                center - CAP_HALF_WIDTH,
                center + CAP_HALF_WIDTH
            );
        }
        let _ = writeln!(
            out,
            r#"<text class="value" x="{center:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
            high.min(bar_top) - 4.0,
            number(summary.median)
        );
        let _ = writeln!(
            out,
            r#"<text x="{center:.1}" y="{:.1}" text-anchor="middle">{name}</text>"#,
            PLOT_BOTTOM + 18.0
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{PLOT_LEFT}" y="{:.1}" font-size="10" fill="#555">bar: median of {rounds} rounds; line: min–max over the rounds</text>"##,
        PLOT_BOTTOM + 36.0
    );
    for (index, line) in skipped.iter().enumerate() {
        let _ = writeln!(
            out,
            r##"<text x="{PLOT_LEFT}" y="{:.1}" font-size="10" fill="#a00">{}</text>"##,
            PLOT_BOTTOM + 52.0 + 16.0 * index as f64,
            escape(line)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::axis;

    #[test]
    fn axis_steps_are_round_and_reach_the_highest_value() {
        for (highest, expected) in [
            (12_345.0, (12_500.0, 2_500.0)),
            (1.0, (1.0, 0.2)),
            (0.73, (0.8, 0.2)),
            (0.0, (1.0, 0.25)),
        ] {
            let (top, step) = axis(highest);
            assert!((top - expected.0).abs() < 1e-9 && (step - expected.1).abs() < 1e-9);
            assert!(top >= highest);
        }
    }
}
