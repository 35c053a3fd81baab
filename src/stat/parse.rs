//! One sample line of the Prometheus text format 0.0.4:
//! `name{key="value",...} value [timestamp]`, label values escaped as
//! `metrics/text.rs` escapes them (backslash, quote, newline). Strict: a
//! line that is not exactly that is an error, never a guess.

use anyhow::{anyhow, bail};

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub(super) fn parse_sample(line: &str) -> anyhow::Result<Sample> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        bail!("no metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inside) = rest.strip_prefix('{') {
        rest = parse_labels(inside, &mut labels)?;
    }
    let mut words = rest.split_whitespace();
    let value = words.next().ok_or_else(|| anyhow!("no value"))?;
    let value = parse_value(value)?;
    // An optional timestamp, then nothing.
    if let Some(timestamp) = words.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| anyhow!("{timestamp:?} is not a timestamp"))?;
    }
    if words.next().is_some() {
        bail!("more than a value and a timestamp");
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Parses `key="value",...}` and returns what follows the brace.
fn parse_labels<'a>(
    mut rest: &'a str,
    labels: &mut Vec<(String, String)>,
) -> anyhow::Result<&'a str> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let (key, after) = rest
            .split_once('=')
            .ok_or_else(|| anyhow!("a label without '='"))?;
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("label name {key:?}");
        }
        let after = after
            .trim_start()
            .strip_prefix('"')
            .ok_or_else(|| anyhow!("label {key} is not quoted"))?;
        let (value, after) = unescape_until_quote(after)?;
        labels.push((key.to_string(), value));
        rest = after.trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            bail!("labels not closed");
        }
    }
}

/// The value up to the closing quote, unescaped, and what follows it.
fn unescape_until_quote(text: &str) -> anyhow::Result<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &text[at + 1..])),
            '\\' => match chars.next() {
                Some((_, 'n')) => value.push('\n'),
                Some((_, escaped @ ('\\' | '"'))) => value.push(escaped),
                _ => bail!("a bad escape in a label value"),
            },
            c => value.push(c),
        }
    }
    bail!("a label value without its closing quote")
}

fn parse_value(text: &str) -> anyhow::Result<f64> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse::<f64>()
            .map_err(|_| anyhow!("{text:?} is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(sample: &Sample) -> Vec<(&str, &str)> {
        let pairs = sample.labels.iter();
        pairs.map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn parses_the_lines_ringside_writes() {
        let bare = parse_sample("ringside_shards 2").unwrap();
        assert_eq!((bare.name.as_str(), bare.value), ("ringside_shards", 2.0));
        assert!(bare.labels.is_empty());

        let line =
            r#"response_latency_ms_bucket{direction="inbound",sni="a\"b\\c\nd",le="+Inf"} 7"#;
        let bucket = parse_sample(line).unwrap();
        assert_eq!(bucket.name, "response_latency_ms_bucket");
        assert_eq!(
            labels(&bucket),
            [
                ("direction", "inbound"),
                ("sni", "a\"b\\c\nd"),
                ("le", "+Inf")
            ]
        );
        assert_eq!(bucket.value, 7.0);

        let seconds = parse_sample(r#"x_sum{a="1",} 0.0007 1700000000000"#).unwrap();
        assert_eq!(
            (labels(&seconds), seconds.value),
            (vec![("a", "1")], 0.0007)
        );
        assert!(parse_sample("x +Inf").unwrap().value.is_infinite());
    }

    #[test]
    fn refuses_what_is_not_a_sample() {
        for line in [
            "<html>",
            "x",
            "x{a=\"1\"",
            "x{a=1} 2",
            "x{a=\"1} 2",
            "x{a=\"\\q\"} 2",
            "x{a b=\"1\"} 2",
            "x one",
            "x 1 2 3",
            "{a=\"1\"} 2",
        ] {
            assert!(parse_sample(line).is_err(), "{line:?} parsed");
        }
    }
}
