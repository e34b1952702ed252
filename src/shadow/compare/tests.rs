use super::*;
use bytes::Bytes;

fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
    Response {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), Bytes::copy_from_slice(v.as_bytes())))
            .collect(),
        body: Bytes::copy_from_slice(body.as_bytes()),
        too_large: false,
    }
}

fn json(body: &str) -> Response {
    resp(200, &[("content-type", "application/json")], body)
}

fn fields(d: &[FieldDiff]) -> Vec<&str> {
    d.iter().map(|d| d.field.as_str()).collect()
}

fn with(f: impl FnOnce(&mut ShadowConfig)) -> Comparator {
    let mut cfg = ShadowConfig::new();
    f(&mut cfg);
    Comparator::new(&cfg)
}

#[test]
fn identical_responses_do_not_differ() {
    let c = with(|_| {});
    let a = json(r#"{"a":1,"b":[1,2]}"#);
    assert!(c.diff(&a, &a.clone()).is_empty());
}

#[test]
fn status_and_headers_with_the_default_ignore_list() {
    let c = with(|_| {});
    let a = resp(200, &[("date", "Mon"), ("x-v", "1"), ("server", "a")], "x");
    let b = resp(500, &[("date", "Tue"), ("x-v", "2"), ("x-new", "y")], "x");
    let d = c.diff(&a, &b);
    assert_eq!(fields(&d), ["status", "header:x-new", "header:x-v"]);
    assert_eq!((d[0].primary.as_str(), d[0].other.as_str()), ("200", "500"));
    assert_eq!(d[1].primary, "(missing)");
    let c = with(|cfg| cfg.ignore_headers = vec!["x-v".parse().unwrap(), "x-new".parse().unwrap()]);
    assert_eq!(fields(&c.diff(&a, &b)), ["status"]);
}

#[test]
fn json_is_structural() {
    let c = with(|_| {});
    // Key order and number spelling do not matter; a changed field, a missing one and an
    // array element do.
    let a = json(r#"{"id":1,"name":"a","n":1.0,"tags":["x","y"],"gone":true}"#);
    let b = json(r#"{"tags":["x","z"],"n":1,"name":"b","id":1}"#);
    let d = c.diff(&a, &b);
    assert_eq!(fields(&d), ["body:$.gone", "body:$.name", "body:$.tags[1]"]);
    assert_eq!(d[1].primary, "\"a\"");
    assert_eq!(d[0].other, "(missing)");
}

#[test]
fn numbers_are_values_and_integers_exact() {
    let c = with(|_| {});
    assert!(c
        .diff(&json(r#"{"n":1}"#), &json(r#"{"n":1.0}"#))
        .is_empty());
    assert!(c
        .diff(&json(r#"{"n":-3}"#), &json(r#"{"n":-3.0}"#))
        .is_empty());
    // Two timestamps in ns, 100 ns apart: the same f64, not the same number.
    let d = c.diff(
        &json(r#"{"at":1796690000123456700}"#),
        &json(r#"{"at":1796690000123456800}"#),
    );
    assert_eq!(fields(&d), ["body:$.at"]);
}

#[test]
fn json_ignore_paths_and_array_order() {
    let a = json(r#"{"meta":{"at":1},"items":[{"id":1,"v":"a"},{"id":2,"v":"b"}]}"#);
    let b = json(r#"{"meta":{"at":2},"items":[{"id":3,"v":"b"},{"id":4,"v":"a"}]}"#);
    let c = with(|cfg| {
        cfg.ignore_json = ["$.meta", "$.items[*].id"]
            .iter()
            .map(|p| JsonPattern::parse(p).unwrap())
            .collect()
    });
    assert_eq!(
        fields(&c.diff(&a, &b)),
        ["body:$.items[0].v", "body:$.items[1].v"]
    );
    let c = with(|cfg| {
        cfg.ignore_json = vec![
            JsonPattern::parse("$.meta").unwrap(),
            JsonPattern::parse("$.items[*].id").unwrap(),
        ];
        cfg.ignore_array_order = true;
    });
    assert!(c.diff(&a, &b).is_empty());
    let b2 = json(r#"{"meta":{},"items":[{"id":3,"v":"b"},{"id":4,"v":"c"}]}"#);
    assert_eq!(fields(&c.diff(&a, &b2)), ["body:$.items"]);
}

#[test]
fn text_with_masks_and_binary_exact() {
    let a = resp(
        200,
        &[("content-type", "text/plain")],
        "at 2026-12-07T10:00:00Z ok",
    );
    let b = resp(
        200,
        &[("content-type", "text/plain")],
        "at 2026-12-08T11:11:11Z ok",
    );
    assert_eq!(fields(&with(|_| {}).diff(&a, &b)), ["body"]);
    let masked =
        with(|cfg| cfg.text_masks = vec![regex::Regex::new(r"\d{4}-\d\d-\d\dT[\d:]+Z").unwrap()]);
    assert!(masked.diff(&a, &b).is_empty());
    let mut x = resp(200, &[], "");
    x.body = Bytes::from_static(b"\xff\x00\x01");
    let mut y = x.clone();
    assert!(masked.diff(&x, &y).is_empty());
    y.body = Bytes::from_static(b"\xff\x00\x02");
    assert_eq!(fields(&masked.diff(&x, &y)), ["body"]);
}

#[test]
fn json_that_does_not_parse_is_compared_as_text() {
    let c = with(|_| {});
    assert_eq!(fields(&c.diff(&json("{oops"), &json("{oops!"))), ["body"]);
    let c = with(|cfg| cfg.body = BodyMode::Ignore);
    assert!(c.diff(&json("{oops"), &json("{oops!")).is_empty());
}

#[test]
fn noise_cancellation() {
    let c = with(|_| {});
    let primary = json(r#"{"id":1,"at":100,"name":"a"}"#);
    let reference = json(r#"{"id":1,"at":101,"name":"a"}"#);
    let candidate = json(r#"{"id":1,"at":102,"name":"b"}"#);
    let noise = c.diff(&primary, &reference);
    let (real, cancelled) = cancel_noise(c.diff(&primary, &candidate), Some(&noise));
    assert_eq!(fields(&real), ["body:$.name"]);
    assert_eq!(cancelled, 1);
    let (real, cancelled) = cancel_noise(c.diff(&primary, &candidate), None);
    assert_eq!((real.len(), cancelled), (2, 0));
}

#[test]
fn pathological_inputs_are_bounded() {
    let c = with(|cfg| cfg.ignore_array_order = true);
    let many: Vec<String> = (0..2000).map(|i| format!("{{\"k{i}\":{i}}}")).collect();
    let a = json(&format!("[{}]", many.join(",")));
    let b = json("[]");
    assert!(c.diff(&a, &b).len() <= MAX_FIELDS);
    let deep = format!("{}1{}", "[".repeat(120), "]".repeat(120));
    let deep2 = format!("{}2{}", "[".repeat(120), "]".repeat(120));
    assert_eq!(c.diff(&json(&deep), &json(&deep2)).len(), 1);
}
