//! A small parser of the Prometheus text format (and OpenMetrics, which the
//! relay serves): the samples only, `name{label="value",...} value
//! [timestamp]`. Comment lines (`# HELP`, `# TYPE`, `# EOF`) and exemplars
//! (` # {...} v` after the value) are skipped.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sample {
    /// Metric name as written, suffix included (`mdrelay_gaps_total`).
    pub name: String,
    /// Labels in the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    /// The value (`+Inf`, `-Inf` and `NaN` included).
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if present.
    pub(super) fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A line that is not a sample: where and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}: `{text}`")]
pub(super) struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: &'static str,
    /// The line, cut to 120 bytes.
    pub text: String,
}

/// Parse a whole exposition.
pub(super) fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sample = parse_line(line).map_err(|message| ParseError {
            line: i + 1,
            message,
            text: cut(line, 120).to_owned(),
        })?;
        out.push(sample);
    }
    Ok(out)
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A cursor over one line.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.rest.chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.rest = &self.rest[c.len_utf8()..];
        Some(c)
    }

    fn skip_spaces(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t']);
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` (label names: the same without `:`).
    fn name(&mut self, colon: bool) -> Option<&'a str> {
        let ok = |c: char, first: bool| {
            c.is_ascii_alphabetic()
                || c == '_'
                || (colon && c == ':')
                || (!first && c.is_ascii_digit())
        };
        let mut len = 0;
        for (i, c) in self.rest.char_indices() {
            if !ok(c, i == 0) {
                break;
            }
            len = i + c.len_utf8();
        }
        if len == 0 {
            return None;
        }
        let (name, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(name)
    }

    /// A double-quoted label value with `\\`, `\"` and `\n` escapes.
    fn quoted(&mut self) -> Result<String, &'static str> {
        if self.bump() != Some('"') {
            return Err("expected `\"` to open a label value");
        }
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err("unterminated label value"),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('n') => out.push('\n'),
                    Some('\\') => out.push('\\'),
                    Some('"') => out.push('"'),
                    _ => return Err("bad escape in a label value"),
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// `{name="value",...}` (a trailing comma is allowed).
    fn labels(&mut self) -> Result<Vec<(String, String)>, &'static str> {
        let mut labels = Vec::new();
        if self.peek() != Some('{') {
            return Ok(labels);
        }
        self.bump();
        loop {
            self.skip_spaces();
            if self.peek() == Some('}') {
                self.bump();
                return Ok(labels);
            }
            let key = self.name(false).ok_or("expected a label name")?;
            self.skip_spaces();
            if self.bump() != Some('=') {
                return Err("expected `=` after a label name");
            }
            self.skip_spaces();
            let value = self.quoted()?;
            labels.push((key.to_owned(), value));
            self.skip_spaces();
            match self.bump() {
                Some(',') => {}
                Some('}') => return Ok(labels),
                _ => return Err("expected `,` or `}` after a label"),
            }
        }
    }

    /// The next whitespace-separated token.
    fn token(&mut self) -> &'a str {
        self.skip_spaces();
        let end = self.rest.find([' ', '\t']).unwrap_or(self.rest.len());
        let (tok, rest) = self.rest.split_at(end);
        self.rest = rest;
        tok
    }
}

/// A sample value: a float, `+Inf`, `-Inf` or `NaN`.
pub(super) fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ if s.bytes().any(|b| b.is_ascii_digit()) => s.parse().ok(),
        _ => None,
    }
}

fn parse_line(line: &str) -> Result<Sample, &'static str> {
    let mut c = Cursor { rest: line };
    let name = c.name(true).ok_or("expected a metric name")?.to_owned();
    let labels = c.labels()?;
    if !c.rest.starts_with([' ', '\t']) {
        return Err("expected a space before the value");
    }
    let value = parse_value(c.token()).ok_or("the value is not a number")?;
    // Optional timestamp, then optional exemplar.
    let next = c.token();
    if !next.is_empty() && !next.starts_with('#') {
        parse_value(next).ok_or("unexpected text after the value")?;
        let after = c.token();
        if !after.is_empty() && !after.starts_with('#') {
            return Err("unexpected text after the timestamp");
        }
    }
    Ok(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(line: &str) -> Sample {
        let mut v = parse(line).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn a_sample_without_labels_parses() {
        let s = one("mdrelay_publish_in_flight 12");
        assert_eq!(s.name, "mdrelay_publish_in_flight");
        assert!(s.labels.is_empty());
        assert_eq!(s.value, 12.0);
    }

    #[test]
    fn labels_keep_their_order_and_unescape() {
        let s = one(r#"x_total{venue="okx",msg="a \"b\" \\ c\nd",} 3.5e-3"#);
        assert_eq!(s.label("venue"), Some("okx"));
        assert_eq!(s.label("msg"), Some("a \"b\" \\ c\nd"));
        assert_eq!(s.labels[0].0, "venue");
        assert_eq!(s.value, 0.0035);
    }

    #[test]
    fn infinities_nan_timestamps_and_exemplars_are_understood() {
        let s = one(r#"h_bucket{le="+Inf"} 7 1700000000"#);
        assert_eq!(s.label("le").and_then(parse_value), Some(f64::INFINITY));
        assert_eq!(s.value, 7.0);
        assert!(one("g NaN").value.is_nan());
        assert_eq!(one("g -Inf").value, f64::NEG_INFINITY);
        let e = one(r#"c_total{a="b"} 4 # {trace_id="x"} 1.0 1700000000"#);
        assert_eq!(e.value, 4.0);
    }

    #[test]
    fn comments_blank_lines_and_eof_are_skipped() {
        let text = "# HELP a Help text\n# TYPE a counter\n\na_total 1\n# EOF\n";
        let v = parse(text).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].name, "a_total");
    }

    #[test]
    fn bad_lines_are_refused_with_their_line_number() {
        for (text, message) in [
            ("ok 1\n{x=\"1\"} 2", "expected a metric name"),
            ("ok 1\nm{x=1} 2", "expected `\"` to open a label value"),
            ("ok 1\nm{x=\"1} 2", "unterminated label value"),
            ("ok 1\nm{x=\"1\" 2", "expected `,` or `}` after a label"),
            ("ok 1\nm{x=\"\\t\"} 2", "bad escape in a label value"),
            ("ok 1\nm", "expected a space before the value"),
            ("ok 1\nm abc", "the value is not a number"),
            ("ok 1\nm 1 2 3", "unexpected text after the timestamp"),
            ("ok 1\nm 1 zz", "unexpected text after the value"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!((e.line, e.message), (2, message), "{text}");
        }
    }

    #[test]
    fn the_relays_own_exposition_parses_to_its_values() {
        use crate::application::metrics::Metrics;
        use crate::domain::DataType;
        let m = Metrics::new();
        m.declare_venue("ven-a", &[DataType::Trade]);
        Metrics::venue(&m.frames_received, "ven-a").inc_by(41);
        m.venue_type(&m.events_mapped, "ven-a")[DataType::Trade.index()].inc_by(7);
        let l = crate::application::metrics::VenueTypeLabel {
            venue: "ven-a".into(),
            data_type: "trade".into(),
        };
        m.venue_lag.get_or_create(&l).observe(0.003);
        let v = parse(&m.encode()).unwrap();
        // The sum over the series of `name` for venue `ven-a` (and bound `le`).
        let find = |name: &str, le: Option<&str>| {
            let mut it = v
                .iter()
                .filter(|s| s.name == name && s.label("venue") == Some("ven-a"))
                .filter(|s| s.label("le") == le)
                .peekable();
            it.peek()?;
            Some(it.map(|s| s.value).sum::<f64>())
        };
        assert_eq!(find("mdrelay_frames_received_total", None), Some(41.0));
        assert_eq!(find("mdrelay_events_mapped_total", None), Some(7.0));
        assert_eq!(find("mdrelay_venue_lag_seconds_count", None), Some(1.0));
        assert_eq!(
            find("mdrelay_venue_lag_seconds_bucket", Some("0.002")),
            Some(0.0)
        );
        assert_eq!(
            find("mdrelay_venue_lag_seconds_bucket", Some("0.004")),
            Some(1.0)
        );
        assert_eq!(
            find("mdrelay_venue_lag_seconds_bucket", Some("+Inf")),
            Some(1.0)
        );
    }

    fn escape(s: &str) -> String {
        s.replace('\\', r"\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }

    proptest! {
        #[test]
        fn any_label_value_survives_escaping(value in "\\PC*|[\"\\\\\n{},= ]*", v in -1e300f64..1e300) {
            let line = format!("m_total{{a=\"{}\",b=\"x\"}} {v:?}", escape(&value));
            let s = one(&line);
            prop_assert_eq!(s.label("a"), Some(value.as_str()));
            prop_assert_eq!(s.label("b"), Some("x"));
            prop_assert_eq!(s.value, v);
        }
    }
}
