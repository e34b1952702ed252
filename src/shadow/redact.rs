//! What never leaves the agent as it is: the values of the redacted headers, and the JSON
//! fields of `redact-json`, in the diff file and on the report page.

use super::compare::{FieldDiff, Kind};
use crate::config::{JsonPattern, PathSeg, Rules, ShadowConfig};
use serde_json::Value;
use std::collections::HashSet;

/// Longest body shown in an example or a diff line.
pub const MAX_BODY_SHOWN: usize = 4096;

pub struct Redactor {
    headers: HashSet<String>,
    json: Vec<JsonPattern>,
}

impl Redactor {
    pub fn new(cfg: &ShadowConfig) -> Redactor {
        let mut headers: HashSet<String> = ShadowConfig::DEFAULT_REDACTED_HEADERS
            .iter()
            .map(|h| (*h).to_owned())
            .collect();
        headers.extend(cfg.redact_headers.iter().map(|h| h.as_str().to_owned()));
        Redactor {
            headers,
            json: cfg.redact_json.clone(),
        }
    }

    pub fn header(&self, name: &str) -> bool {
        self.headers.contains(name)
    }

    /// A body for showing: JSON with the redacted fields replaced, else text (lossy UTF-8);
    /// at most [`MAX_BODY_SHOWN`] bytes.
    pub fn body(&self, body: &[u8]) -> String {
        let text = match serde_json::from_slice::<Value>(body) {
            Ok(mut v) if !self.json.is_empty() => {
                self.walk(&mut v, &mut Vec::new());
                v.to_string()
            }
            _ => String::from_utf8_lossy(body).into_owned(),
        };
        match text.char_indices().nth(MAX_BODY_SHOWN) {
            Some((i, _)) => format!("{}\u{2026}", text.get(..i).unwrap_or("")),
            None => text,
        }
    }

    fn walk(&self, v: &mut Value, path: &mut Vec<PathSeg>) {
        if self.json.iter().any(|p| p.matches(path)) {
            *v = Value::String(Rules::REDACTED.to_owned());
            return;
        }
        match v {
            Value::Object(m) => {
                for (k, child) in m.iter_mut() {
                    path.push(PathSeg::Key(k.clone()));
                    self.walk(child, path);
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter_mut().enumerate() {
                    path.push(PathSeg::Index(i));
                    self.walk(child, path);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    /// A differing field as shown: a redacted header's or JSON field's values hidden.
    pub fn diff(&self, d: &FieldDiff) -> FieldDiff {
        let hidden = match d.kind {
            Kind::Headers => d
                .field
                .strip_prefix("header:")
                .is_some_and(|n| self.header(n)),
            Kind::Body => d
                .json_path
                .as_ref()
                .is_some_and(|path| self.json.iter().any(|p| covers(p, path))),
            Kind::Status => false,
        };
        match hidden {
            true => FieldDiff {
                primary: Rules::REDACTED.to_owned(),
                other: Rules::REDACTED.to_owned(),
                ..d.clone()
            },
            false => d.clone(),
        }
    }
}

/// A pattern covers a path when it matches the path or one of its ancestors.
fn covers(p: &JsonPattern, path: &[PathSeg]) -> bool {
    (0..=path.len()).any(|n| path.get(..n).is_some_and(|prefix| p.matches(prefix)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(headers: &[&str], json: &[&str]) -> Redactor {
        let mut cfg = ShadowConfig::new();
        cfg.redact_headers = headers.iter().map(|h| h.parse().unwrap()).collect();
        cfg.redact_json = json
            .iter()
            .map(|p| JsonPattern::parse(p).unwrap())
            .collect();
        Redactor::new(&cfg)
    }

    #[test]
    fn json_fields_and_headers_are_hidden() {
        let r = redactor(&["x-token"], &["$..password", "$.card"]);
        let shown = r.body(br#"{"user":{"name":"a","password":"hunter2"},"card":{"n":"4111"}}"#);
        assert!(
            !shown.contains("hunter2") && !shown.contains("4111"),
            "{shown}"
        );
        assert!(shown.contains("\"name\":\"a\""));
        assert!(r.header("x-token") && r.header("authorization") && !r.header("x-other"));
        let d = FieldDiff {
            field: "body:$.card.n".into(),
            kind: Kind::Body,
            primary: "\"4111\"".into(),
            other: "\"4222\"".into(),
            json_path: Some(vec![PathSeg::Key("card".into()), PathSeg::Key("n".into())]),
        };
        assert_eq!(r.diff(&d).primary, Rules::REDACTED);
        let d = FieldDiff {
            field: "header:x-token".into(),
            kind: Kind::Headers,
            primary: "s1".into(),
            other: "s2".into(),
            json_path: None,
        };
        assert_eq!(r.diff(&d).other, Rules::REDACTED);
    }

    #[test]
    fn a_key_with_a_dot_is_still_redacted() {
        let r = redactor(&[], &["$..secret"]);
        let json = |b: &str| super::super::Response {
            status: 200,
            headers: vec![(
                "content-type".into(),
                bytes::Bytes::from_static(b"application/json"),
            )],
            body: bytes::Bytes::copy_from_slice(b.as_bytes()),
            too_large: false,
        };
        let c = super::super::Comparator::new(&ShadowConfig::new());
        let d = c.diff(
            &json(r#"{"a.b":{"secret":"s1"}}"#),
            &json(r#"{"a.b":{"secret":"s2"}}"#),
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "body:$.a.b.secret");
        let shown = r.diff(&d[0]);
        assert_eq!(
            (shown.primary.as_str(), shown.other.as_str()),
            (Rules::REDACTED, Rules::REDACTED)
        );
    }

    #[test]
    fn long_bodies_are_shortened() {
        let r = redactor(&[], &[]);
        assert!(r.body(&vec![b'a'; 10_000]).chars().count() <= MAX_BODY_SHOWN + 1);
    }
}
