use super::breaker::Breaker;
use super::*;
use crate::config::{BreakerConfig, HostPolicy, Rules, SampleKey, Sampling};
use crate::mirror::message::parse_target;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Version};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

fn req(method: Method, target: &'static [u8], headers: &[(&str, &str)]) -> MirrorRequest {
    let (target, target_authority) = parse_target(&Bytes::from_static(target)).unwrap();
    MirrorRequest {
        method,
        target,
        target_authority,
        version: Version::HTTP_11,
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect(),
        has_host: headers.iter().any(|(n, _)| *n == "host"),
        body: Bytes::new(),
        src: Some([192, 0, 2, 1].into()),
        id: None,
    }
}

fn sampler(percent: f64, by: SampleKey) -> sample::Sampler {
    sample::Sampler::new(&Sampling { percent, by })
}

#[test]
fn random_fraction_within_five_sigma() {
    let s = sampler(10.0, SampleKey::Random);
    let r = req(Method::GET, b"/", &[]);
    let n = 100_000;
    let hits = (0..n).filter(|_| s.sampled(&r)).count() as f64;
    let (p, nf) = (0.10, n as f64);
    let sigma = (nf * p * (1.0 - p)).sqrt();
    assert!((hits - nf * p).abs() < 5.0 * sigma, "{hits}");
    assert!(!sampler(0.0, SampleKey::Random).sampled(&r));
    assert!((0..1000).all(|_| sampler(100.0, SampleKey::Random).sampled(&r)));
}

#[test]
fn sticky_keys_are_all_in_or_all_out_and_fixed_forever() {
    let s = sampler(30.0, SampleKey::Cookie("sid".into()));
    let mut inside = 0;
    for k in 0..2000 {
        let cookie = format!("a=1; sid=user{k}; b=2");
        let r = req(Method::GET, b"/", &[("cookie", &cookie)]);
        let first = s.sampled(&r);
        assert!((0..5).all(|_| s.sampled(&r) == first));
        inside += usize::from(first);
    }
    assert!((450..750).contains(&inside), "{inside}");
    // The hash is fixed: agents and restarts agree (a changed seed or algorithm fails here).
    assert_eq!(
        sample::hash(b"user1"),
        xxhash_rust::xxh3::xxh3_64_with_seed(b"user1", sample::SEED)
    );
    assert_eq!(sample::SEED, 0x5350_4f41_4d49_5252);
    // No key: out.
    assert!(!s.sampled(&req(Method::GET, b"/", &[("cookie", "other=1")])));
    let h = sampler(100.0, SampleKey::Header(HeaderName::from_static("x-user")));
    assert!(h.sampled(&req(Method::GET, b"/", &[("x-user", "u")])));
    assert!(!h.sampled(&req(Method::GET, b"/", &[])));
    let src = sampler(100.0, SampleKey::Src);
    assert!(src.sampled(&req(Method::GET, b"/", &[])));
    let mut no_src = req(Method::GET, b"/", &[]);
    no_src.src = None;
    assert!(!src.sampled(&no_src));
}

#[test]
fn cookie_parsing() {
    let r = req(
        Method::GET,
        b"/",
        &[("cookie", "a=1;sid = x ; sid=y"), ("cookie", "c=3")],
    );
    assert_eq!(sample::cookie(&r, "sid"), Some(&b"x"[..]));
    assert_eq!(sample::cookie(&r, "c"), Some(&b"3"[..]));
    assert_eq!(sample::cookie(&r, "s"), None);
    let odd = req(Method::GET, b"/", &[("cookie", ";;=;sid")]);
    assert_eq!(sample::cookie(&odd, "sid"), None);
}

fn rules() -> Rules {
    Rules {
        methods: vec![Method::GET, Method::POST],
        path_include: Some(regex::RegexSet::new(["^/api/"]).unwrap()),
        path_exclude: Some(regex::RegexSet::new(["/health$"]).unwrap()),
        ..Rules::default()
    }
}

#[test]
fn filters_methods_and_paths() {
    let r = rules();
    assert!(rules::allows(
        &r,
        &req(Method::GET, b"/api/x?q=/health", &[])
    ));
    assert!(!rules::allows(&r, &req(Method::PUT, b"/api/x", &[])));
    assert!(!rules::allows(&r, &req(Method::GET, b"/web", &[])));
    assert!(!rules::allows(&r, &req(Method::GET, b"/api/health", &[])));
}

#[test]
fn rewrites_headers_host_and_forwarding() {
    let r = Rules {
        remove_headers: vec![HeaderName::from_static("x-debug")],
        redact_headers: vec![http::header::AUTHORIZATION, http::header::COOKIE],
        set_headers: vec![(
            HeaderName::from_static("x-mirror"),
            HeaderValue::from_static("s"),
        )],
        host: HostPolicy::Target,
        x_forwarded_for: true,
        forwarded: true,
        ..Rules::default()
    };
    let original = req(
        Method::GET,
        b"/",
        &[
            ("host", "prod"),
            ("authorization", "Bearer SECRET"),
            ("x-debug", "1"),
            ("cookie", "sid=SECRET"),
            ("x-mirror", "old"),
            ("x-forwarded-for", "10.0.0.1"),
        ],
    );
    let out = rules::rewrite(&r, &original, &"staging:8080".parse().unwrap());
    let h: Vec<(String, String)> = out
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    let want = [
        ("host", "staging:8080"),
        ("authorization", "[redacted]"),
        ("cookie", "[redacted]"),
        ("x-forwarded-for", "10.0.0.1, 192.0.2.1"),
        ("x-mirror", "s"),
        ("forwarded", "for=192.0.2.1"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(h, want);
    assert!(out.has_host);
    // The shared request is untouched.
    assert_eq!(original.headers[1].1, "Bearer SECRET");
    let lit = Rules {
        host: HostPolicy::Literal(HeaderValue::from_static("v.example")),
        ..Rules::default()
    };
    let out = rules::rewrite(&lit, &req(Method::GET, b"/", &[]), &"t".parse().unwrap());
    assert_eq!(
        out.headers,
        [(http::header::HOST, HeaderValue::from_static("v.example"))]
    );
    let v6 = Rules {
        forwarded: true,
        ..Rules::default()
    };
    let mut r6 = req(Method::GET, b"/", &[]);
    r6.src = Some("2001:db8::1".parse().unwrap());
    let out = rules::rewrite(&v6, &r6, &"t".parse().unwrap());
    assert_eq!(out.headers[0].1, "for=\"[2001:db8::1]\"");
}

#[test]
fn policy_counts_each_drop() {
    let stats = TargetStats::default();
    let p = Policy::new(
        PolicyConfig {
            rate: Some(RateCap {
                per_second: NonZeroU32::new(1).unwrap(),
                burst: NonZeroU32::new(3).unwrap(),
            }),
            rules: Some(rules()),
            ..PolicyConfig::default()
        },
        "t".parse().unwrap(),
    );
    let ok = Arc::new(req(Method::GET, b"/api/a", &[]));
    let sent = (0..10)
        .filter(|_| matches!(p.decide(&ok, &stats), Verdict::Send(..)))
        .count();
    assert_eq!(sent, 3, "the burst, then nothing within the same second");
    assert_eq!(crate::stats::get(&stats.dropped_rate_limited), 7);
    let filtered = Arc::new(req(Method::GET, b"/web", &[]));
    assert!(matches!(p.decide(&filtered, &stats), Verdict::Drop));
    assert_eq!(crate::stats::get(&stats.dropped_filtered), 1);
    // No rules that rewrite: the shared request itself.
    let Verdict::Send(same, _) = Policy::default().decide(&ok, &stats) else {
        panic!()
    };
    assert!(Arc::ptr_eq(&same, &ok));
}

#[test]
fn breaker_opens_cools_down_and_probes() {
    let b = Breaker::new(BreakerConfig {
        failures: NonZeroU32::new(3).unwrap(),
        cool_down: Duration::from_secs(10),
    });
    let t0 = Instant::now();
    assert!(b.admit_at(t0));
    assert_eq!(b.record_at(false, t0), Outcome::Failure);
    assert_eq!(b.record_at(true, t0), Outcome::Success);
    assert_eq!(b.record_at(false, t0), Outcome::Failure);
    assert_eq!(b.record_at(false, t0), Outcome::Failure);
    assert_eq!(b.record_at(false, t0), Outcome::Opened);
    assert!(!b.admit_at(t0 + Duration::from_secs(9)));
    // Cool-down over: one probe, not two.
    let t1 = t0 + Duration::from_secs(10);
    assert!(b.admit_at(t1));
    assert!(!b.admit_at(t1));
    // The probe fails: open again for a cool-down.
    assert_eq!(b.record_at(false, t1), Outcome::Failure);
    assert!(!b.admit_at(t1 + Duration::from_secs(5)));
    let t2 = t1 + Duration::from_secs(10);
    assert!(b.admit_at(t2));
    assert_eq!(b.record_at(true, t2), Outcome::Success);
    assert!(b.admit_at(t2) && b.admit_at(t2));
}

#[test]
fn overrides_keep_the_breaker_and_an_unchanged_rate_limiter() {
    let stats = TargetStats::default();
    let cap = RateCap {
        per_second: NonZeroU32::new(1).unwrap(),
        burst: NonZeroU32::new(2).unwrap(),
    };
    let p = Policy::new(
        PolicyConfig {
            rate: Some(cap),
            breaker: Some(BreakerConfig {
                failures: NonZeroU32::new(1).unwrap(),
                cool_down: Duration::from_secs(3600),
            }),
            ..PolicyConfig::default()
        },
        "t".parse().unwrap(),
    );
    let r = Arc::new(req(Method::GET, b"/", &[]));
    assert!(matches!(p.decide(&r, &stats), Verdict::Send(..)));
    let Verdict::Send(_, Some(b)) = p.decide(&r, &stats) else {
        panic!("the burst of 2, with the breaker")
    };
    assert_eq!(b.record(false), Outcome::Opened);
    assert!(p.breaker_open());
    // Sampling at 0 %: out before the rate cap and the breaker are asked.
    let none = p.with_overrides(
        Some(Sampling {
            percent: 0.0,
            by: SampleKey::Random,
        }),
        Some(cap),
    );
    assert!(none.breaker_open(), "breaker state kept");
    assert!(matches!(none.decide(&r, &stats), Verdict::Drop));
    assert_eq!(crate::stats::get(&stats.dropped_sampled_out), 1);
    // Same cap: the same limiter, its burst used up.
    let all = none.with_overrides(None, Some(cap));
    assert!(matches!(all.decide(&r, &stats), Verdict::Drop));
    assert_eq!(crate::stats::get(&stats.dropped_rate_limited), 1);
    // No cap: only the open breaker drops.
    let uncapped = all.with_overrides(None, None);
    assert!(matches!(uncapped.decide(&r, &stats), Verdict::Drop));
    assert_eq!(crate::stats::get(&stats.dropped_breaker_open), 1);
    assert_eq!(uncapped.config().breaker, p.config().breaker);
}

proptest::proptest! {
    /// Any Cookie bytes a client sends: a value or none, never a panic; a rule set's copy of
    /// the request keeps every other header.
    #[test]
    fn any_cookie_and_header_bytes(cookie in proptest::collection::vec(0x20u8..0x7f, 0..80)) {
        let Ok(value) = HeaderValue::from_bytes(&cookie) else { return Ok(()) };
        let mut r = req(Method::GET, b"/", &[]);
        r.headers.push((http::header::COOKIE, value));
        let s = sampler(50.0, SampleKey::Cookie("sid".into()));
        let _ = s.sampled(&r);
        let rules = Rules { x_forwarded_for: true, forwarded: true, host: HostPolicy::Target, ..Rules::default() };
        let out = rules::rewrite(&rules, &r, &"t:1".parse().unwrap());
        proptest::prop_assert!(out.headers.iter().any(|(n, _)| n == http::header::COOKIE));
    }
}
