use super::*;
use crate::config::describe;
use crate::config::{HostPolicy, SampleKey};

fn defaults() -> MirrorConfig {
    MirrorConfig::new(http::Uri::from_static(MirrorConfig::PLACEHOLDER_URL))
}

fn err(text: &str) -> String {
    match parse(text, &defaults()) {
        Ok(_) => panic!("accepted: {text}"),
        Err((at, msg)) => {
            let (l, c) = at.map_or((0, 0), |a| line_col(text, a));
            format!("{l}:{c}: {msg}")
        }
    }
}

#[test]
fn full_target() {
    let t = parse(
        r#"
[[target]]
name = "staging"
url = "http://staging:8080/pre"
timeout = "2s"
connect-timeout = 500
queue = 10
concurrency = 3
memory = "1M"
proxy = "proxy:3128"
insecure = true
sample = { percent = 12.5, by = "cookie:SESSION" }
rate = { per-second = 50 }
breaker = { failures = 3, cool-down = "5s" }
methods = ["GET", "POST"]
path-include = ["^/api/"]
path-exclude = ["/health$"]
remove-headers = ["x-debug"]
set-headers = { "X-Mirror" = "staging" }
redact-headers = ["Authorization", "cookie"]
host = "target"
x-forwarded-for = true
forwarded = true
"#,
        &defaults(),
    )
    .unwrap();
    let [t] = &t[..] else { panic!() };
    assert_eq!(t.name, "staging");
    let m = &t.mirror;
    assert_eq!(m.url, "http://staging:8080/pre");
    assert_eq!(m.timeout, std::time::Duration::from_secs(2));
    assert_eq!(m.connect_timeout, std::time::Duration::from_millis(500));
    assert_eq!(
        (m.queue_size, m.concurrency, m.memory_budget),
        (10, 3, 1 << 20)
    );
    assert_eq!(m.proxy.as_ref().unwrap().url, "http://proxy:3128/");
    assert!(m.insecure);
    // Not in the table: the flags' value.
    assert_eq!(m.drain_timeout, MirrorConfig::DEFAULT_DRAIN_TIMEOUT);
    let p = &t.policy;
    let s = p.sample.as_ref().unwrap();
    assert_eq!(
        (s.percent, &s.by),
        (12.5, &SampleKey::Cookie("SESSION".into()))
    );
    let r = p.rate.unwrap();
    assert_eq!((r.per_second.get(), r.burst.get()), (50, 50));
    assert_eq!(p.breaker.unwrap().failures.get(), 3);
    let rules = p.rules.as_ref().unwrap();
    assert_eq!(rules.methods.len(), 2);
    assert!(rules.path_include.as_ref().unwrap().is_match("/api/x"));
    assert_eq!(rules.redact_headers, ["authorization", "cookie"]);
    assert_eq!(rules.host, HostPolicy::Target);
    assert!(rules.x_forwarded_for && rules.forwarded);
}

#[test]
fn minimal_target_has_no_policy() {
    let t = parse(
        "[[target]]\nname = \"a\"\nurl = \"http://a\"\n",
        &defaults(),
    )
    .unwrap();
    let p = &t[0].policy;
    assert!(p.sample.is_none() && p.rate.is_none() && p.rules.is_none() && p.breaker.is_none());
    assert_eq!(t[0].mirror.queue_size, MirrorConfig::DEFAULT_QUEUE_SIZE);
    assert!(parse("", &defaults()).unwrap().is_empty());
}

#[test]
fn errors_name_line_and_column() {
    let t = |rest: &str| format!("[[target]]\nname = \"a\"\nurl = \"http://a\"\n{rest}\n");
    assert_eq!(err(&t("queue = 0")), "4:9: 0 is out of range [1, 1000000]");
    assert!(err(&t("timeout = \"2x\"")).starts_with("4:11: invalid time format"));
    assert!(err(&t("sample = { percent = 101.0 }")).starts_with("4:22: percent 101"));
    assert!(err(&t("sample = { percent = 5, by = \"ip\" }")).contains("invalid sample key"));
    assert!(err(&t("path-include = [\"(\"]")).starts_with("4:16: invalid path pattern"));
    assert!(err(&t("set-headers = { Host = \"x\" }")).contains("cannot be changed by rules"));
    assert!(err(&t("remove-headers = [\"content-length\"]")).contains("framing"));
    assert!(err(&t("host = \"a b\"")).contains("invalid host"));
    assert!(err(&t("colour = 1")).starts_with("4:1: unknown field `colour`"));
    assert!(err(&t("rate = { per-second = 0 }")).contains("out of range"));
    assert!(
        err("[[target]]\nname = \"a\"\nurl = \"ftp://a\"\n").starts_with("3:7: Unable to set URL")
    );
    assert!(err("[[target]]\nname = \"a b\"\nurl = \"http://a\"\n").contains("invalid target name"));
    assert!(err("[[target]\n").starts_with("1:"));
    let dup = "[[target]]\nname = \"a\"\nurl = \"http://a\"\n[[target]]\nname = \"a\"\nurl = \"http://b\"\n";
    assert_eq!(err(dup), "5:8: duplicate target name 'a'");
}

#[test]
fn load_reports_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(&path, "[[target]]\nname = 1\n").unwrap();
    let e = load(&path, &defaults()).unwrap_err();
    assert!(e.starts_with(&format!("{}:2:8: ", path.display())), "{e}");
    let e = load(&dir.path().join("missing"), &defaults()).unwrap_err();
    assert!(e.contains("cannot read"), "{e}");
}

#[test]
fn dash_u_is_the_default_target() {
    let file = parse(
        "[[target]]\nname = \"b\"\nurl = \"http://b\"\n",
        &defaults(),
    )
    .unwrap();
    let cli = MirrorConfig::new(http::Uri::from_static("http://u"));
    let all = combine(Some(&cli), file).unwrap();
    let names: Vec<_> = all.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["default", "b"]);
    let clash = parse(
        "[[target]]\nname = \"default\"\nurl = \"http://b\"\n",
        &defaults(),
    )
    .unwrap();
    assert!(combine(Some(&cli), clash.clone()).is_err());
    assert_eq!(combine(None, clash).unwrap().len(), 1);
}

#[test]
fn describe_shows_rules_but_not_set_values() {
    let t = parse(
        "[[target]]\nname = \"a\"\nurl = \"http://a\"\nmethods = [\"GET\"]\n\
         path-include = [\"^/api/\"]\nredact-headers = [\"cookie\"]\n\
         set-headers = { \"X-Token\" = \"SECRET\" }\nhost = \"target\"\nforwarded = true\n",
        &defaults(),
    )
    .unwrap();
    let text = describe(&t);
    assert!(
        text.contains(
            "  rules: methods GET, paths ^/api/, redact cookie, set x-token, host target, forwarded"
        ),
        "{text}"
    );
    assert!(!text.contains("SECRET"));
    assert_eq!(
        describe(&[]),
        "no mirror targets: the agent ACKs and mirrors nothing\n"
    );
}

proptest::proptest! {
    /// Any text: an error or targets, never a panic.
    #[test]
    fn any_text_is_refused_or_accepted_never_a_panic(text in "\\PC{0,200}") {
        let _ = parse(&text, &defaults());
    }

    /// Any value in every key of a target table.
    #[test]
    fn any_value_in_any_key(key_i in 0usize..24, value in "[ -~]{0,40}", quoted: bool) {
        const KEYS: [&str; 24] = [
            "name", "url", "timeout", "connect-timeout", "queue", "concurrency", "memory",
            "proxy", "ca-file", "insecure", "sample", "rate", "breaker", "methods",
            "path-include", "path-exclude", "remove-headers", "set-headers", "redact-headers",
            "host", "x-forwarded-for", "forwarded", "sample.by", "rate.burst",
        ];
        let key = KEYS[key_i];
        let v = if quoted { format!("{value:?}") } else { value.clone() };
        let text = format!("[[target]]\nname = \"a\"\nurl = \"http://a\"\n{key} = {v}\n");
        let _ = parse(&text, &defaults());
    }
}

#[test]
fn record_table() {
    let t = parse(
        r#"
[[target]]
name = "rec"
url = "http://staging:8080/"
record = { dir = "/var/lib/spoa-mirror/rec", file-size = "8M", rotate = "10m", gzip = true, disk-budget = "1G", queue = 100 }

[[target]]
name = "plain"
url = "http://other:8080/"
"#,
        &defaults(),
    )
    .unwrap();
    let r = t[0].mirror.record.as_ref().unwrap();
    assert_eq!(r.dir, std::path::Path::new("/var/lib/spoa-mirror/rec"));
    assert_eq!(
        (r.file_size, r.disk_budget, r.queue, r.gzip),
        (8 << 20, 1 << 30, 100, true)
    );
    assert_eq!(r.rotate, std::time::Duration::from_secs(600));
    assert!(t[1].mirror.record.is_none());
    assert!(describe(&t)
        .contains("record to /var/lib/spoa-mirror/rec: files up to 8388608 bytes or 10m"));
    // Defaults, and the checks with the place of the target.
    let t = parse(
        "[[target]]\nname = \"r\"\nurl = \"http://s/\"\nrecord = { dir = \"d\" }\n",
        &defaults(),
    )
    .unwrap();
    assert_eq!(
        t[0].mirror.record,
        Some(crate::config::RecordConfig::new("d".into()))
    );
    assert_eq!(
        err("[[target]]\nname = \"r\"\nurl = \"http://s/\"\nrecord = { dir = \"d\", file-size = \"1M\", disk-budget = \"1M\" }\n"),
        "2:8: record disk budget 1048576 must hold at least two files of 1048576 bytes"
    );
    assert!(err("[[target]]\nname = \"r\"\nurl = \"http://s/\"\nrecord = { dir = \"d\", rotate = \"2d\" }\n").starts_with("4:"));
    assert!(err(
        "[[target]]\nname = \"r\"\nurl = \"http://s/\"\nrecord = { dir = \"d\", size = 1 }\n"
    )
    .contains("unknown field"));
}

#[test]
fn shadow_table_and_compare_roles() {
    let text = r#"
[shadow]
window = "3s"
max-body = "16K"
ignore-headers = ["X-Backend"]
ignore-json = ["$..id"]
ignore-array-order = true
text-masks = ['\d+']
body = "json"
redact-json = ["$.card"]

[[target]]
name = "cand"
url = "http://c:1"
compare = "candidate"

[[target]]
name = "ref"
url = "http://r:1"
compare = "reference"
"#;
    let (targets, shadow) = parse_all(text, &defaults()).unwrap();
    let shadow = shadow.unwrap();
    assert_eq!(shadow.window, std::time::Duration::from_secs(3));
    assert_eq!(shadow.max_body, 16 * 1024);
    assert_eq!(shadow.ignore_headers[0].as_str(), "x-backend");
    assert_eq!(shadow.ignore_json[0].as_str(), "$..id");
    assert!(shadow.ignore_array_order);
    assert_eq!(shadow.body, crate::config::BodyMode::Json);
    assert_eq!(
        targets[0].mirror.compare,
        Some(crate::config::ShadowRole::Candidate)
    );
    assert_eq!(
        targets[1].mirror.compare,
        Some(crate::config::ShadowRole::Reference)
    );
    // Without the table, nothing compares.
    let (t, s) = parse_all(
        "[[target]]\nname = \"a\"\nurl = \"http://a\"\n",
        &defaults(),
    )
    .unwrap();
    assert!(s.is_none() && t[0].mirror.compare.is_none());
}

#[test]
fn shadow_errors() {
    let t = |extra: &str| format!("[[target]]\nname = \"a\"\nurl = \"http://a\"\n{extra}\n");
    assert!(err(&t("compare = \"candidate\"")).contains("compare needs a [shadow] table"));
    assert!(err(&t("compare = \"primary\"")).contains("invalid compare 'primary'"));
    assert!(err(&format!("[shadow]\n{}", t(""))).contains("needs a target with compare"));
    let two_refs = format!(
        "[shadow]\n{}{}{}",
        t("compare = \"candidate\""),
        "[[target]]\nname = \"r1\"\nurl = \"http://r\"\ncompare = \"reference\"\n",
        "[[target]]\nname = \"r2\"\nurl = \"http://r\"\ncompare = \"reference\"\n"
    );
    assert!(err(&two_refs).contains("at most one target"));
    for bad in [
        "window = \"1ms\"",
        "ignore-json = [\"a.b\"]",
        "text-masks = ['(']",
        "body = \"xml\"",
        "message = \"a b\"",
        "max-body = 0",
        "endpoints = 0",
        "unknown = 1",
    ] {
        let e = err(&format!(
            "[shadow]\n{bad}\n{}",
            t("compare = \"candidate\"")
        ));
        assert!(e.starts_with("2:"), "{bad}: {e}");
    }
}
