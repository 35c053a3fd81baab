//! The plain-text table `compare` prints: one row per target, ratios to
//! `direct`, ringside against each peer, and the notes that qualify them.

use super::Comparison;
use std::fmt::Write;

/// Three significant digits, without exponent notation for everyday sizes.
pub(crate) fn number(value: f64) -> String {
    if !value.is_finite() {
        return "-".into();
    }
    let magnitude = value.abs();
    if magnitude >= 100.0 || magnitude == 0.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        let decimals = (2 - magnitude.log10().floor() as i32).clamp(3, 9) as usize;
        format!("{value:.decimals$}")
    }
}

pub fn table(comparison: &Comparison) -> String {
    let scenario = comparison.scenario;
    let mut out = String::new();
    let better = scenario.better();
    let _ = writeln!(
        out,
        "\n== {}: {} ({better})",
        scenario.name(),
        scenario.unit()
    );
    let _ = writeln!(out, "   {}", comparison.setup_line());
    let cpu_header = scenario.cpu_unit().unwrap_or("");
    let mut header = format!(
        "{:<10} {:>10} {:>10} {:>10} {:>10} {:>14}",
        "target", "median", "min", "max", "vs direct", cpu_header
    );
    let summaries = comparison.summaries();
    let has_latency = summaries
        .iter()
        .any(|(_, s)| s.as_ref().is_ok_and(|s| s.latency.is_some()));
    if has_latency {
        let _ = write!(
            header,
            " {:>9} {:>9} {:>9} {:>9}",
            "p50 us", "p99 us", "p99.9 us", "max us"
        );
    }
    let _ = writeln!(out, "{}", header.trim_end());
    for (target, summary) in &summaries {
        match summary {
            Err(reason) => {
                let _ = writeln!(out, "{:<10} skipped: {reason}", target.name());
            }
            Ok(summary) => {
                let vs_direct = comparison
                    .vs_direct(*target)
                    .map(|r| format!("{}x", number(r)))
                    .unwrap_or("-".into());
                let cpu = summary.cpu_per_unit.map(number).unwrap_or("-".into());
                let mut row = format!(
                    "{:<10} {:>10} {:>10} {:>10} {:>10} {:>14}",
                    target.name(),
                    number(summary.median),
                    number(summary.min),
                    number(summary.max),
                    vs_direct,
                    if scenario.cpu_unit().is_some() {
                        cpu
                    } else {
                        String::new()
                    }
                );
                if let Some(p) = summary.latency {
                    let _ = write!(
                        row,
                        " {:>9} {:>9} {:>9} {:>9}",
                        number(p.p50),
                        number(p.p99),
                        number(p.p999),
                        number(p.max)
                    );
                }
                let extras: Vec<String> = summary
                    .extra
                    .iter()
                    .map(|(name, value)| format!("{name}={}", number(*value)))
                    .collect();
                let _ = writeln!(out, "{}   {}", row.trim_end(), extras.join(" "));
            }
        }
    }
    let ratios: Vec<String> = comparison
        .ringside_vs_peers()
        .into_iter()
        .map(|(peer, ratio)| format!("ringside/{} = {}x", peer.name(), number(ratio)))
        .collect();
    if !ratios.is_empty() {
        let _ = writeln!(
            out,
            "   {} (median over median; {better})",
            ratios.join(", ")
        );
    }
    for note in &comparison.notes {
        let _ = writeln!(out, "   note: {note}");
    }
    out
}
