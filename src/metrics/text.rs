//! The Prometheus text format (0.0.4), one family at a time: its HELP and
//! TYPE lines, its samples, a histogram's cumulative buckets, and the
//! escaping of label values. Nothing here knows ringside's metrics; `encode`
//! says which families go on the page, in which order, with which labels.

use std::fmt::{Display, Write};

use hdrhistogram::Histogram;

/// A counter or gauge family: its name, type and help text.
pub(super) struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
}

impl Family {
    pub const fn counter(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            kind: "counter",
            help,
        }
    }

    pub const fn gauge(name: &'static str, help: &'static str) -> Family {
        Family {
            name,
            kind: "gauge",
            help,
        }
    }

    /// The family's header, then one sample per label set. Labels are
    /// written as given (`key="value",...`, values escaped); empty labels
    /// write a bare sample.
    pub fn write<L: AsRef<str>, V: Display>(
        &self,
        out: &mut String,
        series: impl IntoIterator<Item = (L, V)>,
    ) {
        header(out, self.name, self.kind, self.help);
        for (labels, value) in series {
            sample(out, self.name, labels.as_ref(), value);
        }
    }
}

/// A histogram family: its name, help text and buckets.
pub(super) struct HistogramFamily {
    pub name: &'static str,
    pub help: &'static str,
    /// Bucket bounds, in the unit recorded.
    pub bounds: &'static [u64],
    /// Recorded units per exposed unit, which divides the bounds and the sum:
    /// 1 for ms exposed as ms, 1e6 for us exposed as seconds.
    pub per_exposed_unit: f64,
}

impl HistogramFamily {
    /// The family's header, then buckets, sum and count per label set.
    pub fn write<'h>(
        &self,
        out: &mut String,
        series: impl IntoIterator<Item = (String, &'h Histogram<u64>)>,
    ) {
        header(out, self.name, "histogram", self.help);
        for (labels, histogram) in series {
            self.write_one(out, &labels, histogram);
        }
    }

    /// Cumulative buckets, sum and count of one HdrHistogram of whole units.
    fn write_one(&self, out: &mut String, labels: &str, h: &Histogram<u64>) {
        let (name, bounds, per_exposed_unit) = (self.name, self.bounds, self.per_exposed_unit);
        // One pass over the recorded values fills every bucket; asking the
        // histogram per bound would scan it once per bound.
        let mut counts = vec![0u64; bounds.len()];
        let mut sum = 0u64;
        for value in h.iter_recorded() {
            let (v, n) = (value.value_iterated_to(), value.count_at_value());
            sum = sum.saturating_add(v.saturating_mul(n));
            if let Some(first) = bounds
                .iter()
                .position(|bound| h.equivalent(v, *bound) || v <= *bound)
            {
                counts[first] += n;
            }
        }
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, count) in bounds.iter().zip(counts) {
            cumulative += count;
            let le = *bound as f64 / per_exposed_unit;
            sample(out, &bucket, &format!("{labels},le=\"{le}\""), cumulative);
        }
        sample(out, &bucket, &format!("{labels},le=\"+Inf\""), h.len());
        let sum = sum as f64 / per_exposed_unit;
        sample(out, &format!("{name}_sum"), labels, sum);
        sample(out, &format!("{name}_count"), labels, h.len());
    }
}

/// Label values escape backslash, quote and newline.
pub(crate) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: impl Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
