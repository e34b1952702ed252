use super::*;

fn json(body: &str) -> Response {
    Response {
        status: 200,
        headers: vec![(
            "content-type".into(),
            Bytes::from_static(b"application/json"),
        )],
        body: Bytes::copy_from_slice(body.as_bytes()),
        too_large: false,
    }
}

fn pairing() -> (Pairing, Arc<Mutex<Report>>) {
    let report = Arc::new(Mutex::new(Report::default()));
    let cfg = Arc::new(ShadowConfig::new());
    let p = Pairing::new(cfg, Arc::clone(&report), Arc::new(Totals::default()), None);
    (p, report)
}

fn expect(p: &mut Pairing, id: &'static [u8], target: &str, role: ShadowRole) {
    let request = MirrorRequest {
        method: http::Method::GET,
        target: http::uri::PathAndQuery::from_static("/u/1"),
        target_authority: None,
        version: http::Version::HTTP_11,
        headers: Vec::new(),
        has_host: false,
        body: Bytes::new(),
        src: None,
        id: Some(Bytes::from_static(id)),
    };
    p.handle(Msg::Expect {
        request: Arc::new(request),
        target: Arc::from(target),
        role,
    });
}

fn mirror(p: &mut Pairing, id: &'static [u8], target: &str, r: Option<Response>) {
    p.handle(Msg::Mirror {
        id: Bytes::from_static(id),
        target: Arc::from(target),
        response: r,
        bytes: 0,
    });
}

#[test]
fn noise_is_cancelled_and_a_silent_reference_leaves_the_pair_unjudged() {
    let (mut p, report) = pairing();
    for id in [&b"a"[..], &b"b"[..]] {
        expect(&mut p, id, "ref", ShadowRole::Reference);
        expect(&mut p, id, "cand", ShadowRole::Candidate);
        p.handle(Msg::Primary {
            id: Bytes::from_static(id),
            response: json(r#"{"at":1,"name":"x"}"#),
            bytes: 0,
        });
        mirror(&mut p, id, "cand", Some(json(r#"{"at":3,"name":"y"}"#)));
    }
    // "a": the reference answered; its `at` is noise, `name` is a real difference.
    mirror(&mut p, b"a", "ref", Some(json(r#"{"at":2,"name":"x"}"#)));
    // "b": the reference failed: the candidate is not judged.
    mirror(&mut p, b"b", "ref", None);
    let r = report.lock().unwrap();
    let row = r.rows.values().next().unwrap();
    assert_eq!(
        (row.compared, row.different(), row.noise_cancelled),
        (1, 1, 1)
    );
    assert_eq!(row.fields.keys().collect::<Vec<_>>(), ["body:$.name"]);
    let unpaired: Vec<_> = r
        .unpaired
        .iter()
        .map(|((t, why), n)| (&**t, *why, *n))
        .collect();
    assert_eq!(unpaired, [("cand", Reason::NoReferenceResponse, 1)]);
    assert!(p.pending.is_empty());
}

#[test]
fn the_window_resolves_what_is_missing() {
    let (mut p, report) = pairing();
    p.cfg = Arc::new(ShadowConfig {
        window: std::time::Duration::ZERO,
        ..ShadowConfig::new()
    });
    expect(&mut p, b"a", "cand", ShadowRole::Candidate);
    expect(&mut p, b"b", "cand", ShadowRole::Candidate);
    p.handle(Msg::Primary {
        id: Bytes::from_static(b"b"),
        response: json("{}"),
        bytes: 0,
    });
    p.sweep();
    let r = report.lock().unwrap();
    let got: Vec<_> = r.unpaired.keys().map(|(_, why)| *why).collect();
    assert_eq!(got, [Reason::NoPrimaryResponse, Reason::Expired]);
}
