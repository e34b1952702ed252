//! Pure: the endpoint a request belongs to, for the report and the metric labels.
//!
//! `GET /users/42/orders/9f1c2d3e-...?page=2` is `GET /users/{id}/orders/{id}`: segments that
//! are numbers, UUIDs or long hex strings become `{id}`, the query is dropped. Cardinality is
//! bounded: the first `max` endpoints seen get their own name, later ones count as `other`.

use std::collections::HashMap;
use std::sync::Arc;

/// Longest endpoint name kept; longer paths are cut at a segment boundary.
const MAX_LEN: usize = 160;
/// Hex strings at least this long are ids (object ids, hashes).
const MIN_HEX_ID: usize = 16;

/// What every endpoint beyond the first `max` is counted as.
pub const OTHER: &str = "other";

/// `METHOD /path/{id}`.
pub fn template(method: &str, path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut out = String::with_capacity(method.len().saturating_add(path.len()).saturating_add(1));
    out.push_str(method.get(..16).unwrap_or(method));
    out.push(' ');
    let mut first = true;
    for seg in path.split('/') {
        if !first {
            out.push('/');
        }
        first = false;
        let piece = if is_id(seg) { "{id}" } else { seg };
        if out.len().saturating_add(piece.len()) > MAX_LEN {
            out.push('\u{2026}');
            break;
        }
        out.push_str(piece);
    }
    out
}

fn is_id(seg: &str) -> bool {
    let b = seg.as_bytes();
    if b.is_empty() {
        return false;
    }
    let digits = b.iter().all(u8::is_ascii_digit);
    let hex = b.len() >= MIN_HEX_ID && b.iter().all(u8::is_ascii_hexdigit);
    digits || hex || is_uuid(b)
}

/// `8-4-4-4-12` hex digits.
fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The endpoint names handed out so far.
pub struct Endpoints {
    max: usize,
    known: HashMap<String, Arc<str>>,
    other: Arc<str>,
}

impl Endpoints {
    pub fn new(max: usize) -> Endpoints {
        Endpoints {
            max,
            known: HashMap::new(),
            other: Arc::from(OTHER),
        }
    }

    /// The name to count a request under.
    pub fn name(&mut self, method: &str, path: &str) -> Arc<str> {
        let t = template(method, path);
        if let Some(name) = self.known.get(&t) {
            return Arc::clone(name);
        }
        if self.known.len() >= self.max {
            return Arc::clone(&self.other);
        }
        let name: Arc<str> = Arc::from(t.as_str());
        self.known.insert(t, Arc::clone(&name));
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_placeholders() {
        for (path, want) in [
            ("/users/42", "GET /users/{id}"),
            ("/users/42/orders?page=2", "GET /users/{id}/orders"),
            ("/o/9f1c2d3e-aaaa-4bbb-8ccc-0123456789ab", "GET /o/{id}"),
            ("/blob/5f2b6c1d9e8a7b6c5d4e3f21", "GET /blob/{id}"),
            ("/v2/items", "GET /v2/items"),
            ("/cafe", "GET /cafe"),
            ("/", "GET /"),
            ("", "GET "),
        ] {
            assert_eq!(template("GET", path), want, "{path}");
        }
    }

    #[test]
    fn long_paths_are_cut() {
        let t = template("GET", &"/abcdefghij".repeat(40));
        assert!(t.len() <= MAX_LEN + 3, "{}", t.len());
        assert!(t.ends_with('\u{2026}'));
    }

    #[test]
    fn cardinality_is_bounded() {
        let mut e = Endpoints::new(2);
        assert_eq!(&*e.name("GET", "/a/1"), "GET /a/{id}");
        assert_eq!(&*e.name("GET", "/b"), "GET /b");
        assert_eq!(&*e.name("GET", "/c"), OTHER);
        assert_eq!(&*e.name("GET", "/a/2"), "GET /a/{id}");
    }
}
