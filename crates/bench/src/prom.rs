//! A small parser for the Prometheus / OpenMetrics text exposition format: enough to read counters.

use std::collections::BTreeMap;

/// One sample: metric name, labels (sorted by name) and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name, e.g. `apiserver_request_total`.
    pub name: String,
    /// Label name → value (unescaped).
    pub labels: BTreeMap<String, String>,
    /// The sample value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, or `""` when absent.
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// Parses every sample line of `text`; comments, blank lines and malformed lines are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

/// Samples of metric `name` only.
pub fn samples<'a>(all: &'a [Sample], name: &str) -> impl Iterator<Item = &'a Sample> {
    let name = name.to_string();
    all.iter().filter(move |s| s.name == name)
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, tail) = parse_labels(after)?;
        labels = parsed;
        rest = tail;
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Parses `a="x",b="y"}` (the text after `{`); returns the labels and the text after `}`.
fn parse_labels(mut s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(tail) = s.strip_prefix('}') {
            return Some((labels, tail));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_string();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => {
                    let (_, escaped) = chars.next()?;
                    value.push(match escaped {
                        'n' => '\n',
                        other => other,
                    });
                }
                other => value.push(other),
            }
        };
        labels.insert(key, value);
        s = &s[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_labels_values_and_skips_comments() {
        let text = "# HELP x help\n# TYPE x counter\nx 3\n\
                    y{a=\"1\",b=\"two words\"} 4.5 1700000000\n\
                    z{msg=\"quote \\\" comma, brace } done\",k=\"v\"} 1e3\n\
                    bad line here\n# EOF\n";
        let got = parse(text);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].name, "x");
        assert!(got[0].labels.is_empty());
        assert_eq!(got[0].value, 3.0);
        assert_eq!(got[1].label("b"), "two words");
        assert_eq!(got[1].value, 4.5);
        assert_eq!(got[2].label("msg"), "quote \" comma, brace } done");
        assert_eq!(got[2].label("k"), "v");
        assert_eq!(got[2].value, 1000.0);
        assert_eq!(got[2].label("missing"), "");
    }

    #[test]
    fn empty_label_set_and_infinity() {
        let got = parse("h_bucket{} +Inf\nh_sum{le=\"+Inf\"} 2\n");
        assert_eq!(got[0].value, f64::INFINITY);
        assert_eq!(got[1].label("le"), "+Inf");
        assert_eq!(samples(&got, "h_sum").count(), 1);
    }
}
