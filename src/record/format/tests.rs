//! Tests of the GoReplay file format: encode/decode round trips, hand-written files, bad records.

use super::*;

fn rec(kind: Kind, id: &str, ts: i64, payload: &[u8]) -> Record {
    Record {
        kind,
        id: id.into(),
        timestamp_ns: ts,
        latency_ns: 0,
        payload: payload.to_vec(),
    }
}

fn read_all(bytes: &[u8]) -> (Vec<Record>, Vec<String>) {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for r in Reader::new(bytes, "f.gor").max_record(1024) {
        match r {
            Ok(r) => ok.push(r),
            Err(e) => bad.push(e.to_string()),
        }
    }
    (ok, bad)
}

#[test]
fn separator_is_the_three_monkeys() {
    assert_eq!(
        SEPARATOR_LINE,
        b"\xF0\x9F\x90\xB5\xF0\x9F\x99\x88\xF0\x9F\x99\x89"
    );
}

#[test]
fn writes_goreplay_layout() {
    let mut out = Vec::new();
    let r = rec(
        Kind::Request,
        "ab12",
        1_700_000_000_000_000_001,
        b"GET / HTTP/1.1\r\n\r\n",
    );
    encode(&r, &mut out).unwrap();
    let want = "1 ab12 1700000000000000001 0\nGET / HTTP/1.1\r\n\r\n\n🐵🙈🙉\n";
    assert_eq!(out, want.as_bytes());
}

#[test]
fn round_trip_of_awkward_payloads() {
    let payloads: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\n".to_vec(),
        b"\r\n\r\n".to_vec(),
        b"POST / HTTP/1.1\r\ncontent-length: 8\r\n\r\na\r\n\r\nb\n\n".to_vec(),
        (0..=255u8).collect(),
        "x🐵🙈🙉\n🐵🙈🙉 \n 🐵🙈🙉\n🐵🙈🙉\r\n🐵🙈"
            .as_bytes()
            .to_vec(),
        b"ends without newline".to_vec(),
    ];
    let mut file = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let kind = [Kind::Request, Kind::Response, Kind::ReplayedResponse][i % 3];
        encode(&rec(kind, &format!("id{i}"), i as i64, p), &mut file).unwrap();
    }
    let (ok, bad) = read_all(&file);
    assert!(bad.is_empty(), "{bad:?}");
    let got: Vec<_> = ok.iter().map(|r| r.payload.clone()).collect();
    assert_eq!(got, payloads);
    assert_eq!(ok[4].id, "id4");
    assert_eq!(ok[1].kind, Kind::Response);
    assert_eq!(ok[2].kind, Kind::ReplayedResponse);
}

#[test]
fn refuses_a_payload_with_the_separator_line() {
    for p in [
        "🐵🙈🙉".as_bytes().to_vec(),
        "🐵🙈🙉\nrest".as_bytes().to_vec(),
        "a\n🐵🙈🙉".as_bytes().to_vec(),
        "a\n🐵🙈🙉\nb".as_bytes().to_vec(),
    ] {
        let mut out = b"kept".to_vec();
        let err = encode(&rec(Kind::Request, "i", 1, &p), &mut out).unwrap_err();
        assert_eq!(err, EncodeError::SeparatorInPayload);
        assert_eq!(out, b"kept");
    }
    let mut out = Vec::new();
    for id in ["", "a b", "é", "a\n"] {
        assert_eq!(
            encode(&rec(Kind::Request, id, 1, b"x"), &mut out),
            Err(EncodeError::BadId)
        );
    }
}

#[test]
fn reads_goreplay_written_files() {
    // As GoReplay's docs show it: a three-field header (no latency).
    let file = "1 d7123dasd913jfd21312dasdhas31 127345969\nGET / HTTP/1.1\r\n\r\n\n🐵🙈🙉\n\
                1 2 1 5\nPOST /upload HTTP/1.1\r\nContent-Length: 7\r\nHost: www.w3.org\r\n\r\na=1&b=2\n🐵🙈🙉\n";
    let (ok, bad) = read_all(file.as_bytes());
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[0].id, "d7123dasd913jfd21312dasdhas31");
    assert_eq!(ok[0].timestamp_ns, 127345969);
    assert_eq!(ok[0].payload, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(ok[1].latency_ns, 5);
    assert!(ok[1].payload.ends_with(b"\r\n\r\na=1&b=2"));
}

#[test]
fn bad_records_are_skipped_with_their_place() {
    let file = "garbage line\nmore\n🐵🙈🙉\n\
                1 ok 5 0\nGET /a HTTP/1.1\r\n\r\n\n🐵🙈🙉\n\
                9 x 1 0\nX\n🐵🙈🙉\n\
                1 x notanumber 0\nX\n🐵🙈🙉\n\
                1 big 1 0\n"
        .to_string()
        + &"y".repeat(3000)
        + "\n🐵🙈🙉\n1 last 7 0\nGET /b HTTP/1.1\r\n\r\n\n🐵🙈🙉\n1 cut 8 0\nGET /c";
    let mut reader = Reader::new(file.as_bytes(), "f.gor").max_record(1024);
    let all: Vec<_> = reader.by_ref().collect();
    let ids: Vec<_> = all
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(ids, ["ok", "last"]);
    let errs: Vec<_> = all
        .iter()
        .filter_map(|r| r.as_ref().err())
        .map(|e| e.to_string())
        .collect();
    assert_eq!(errs.len(), 5, "{errs:?}");
    assert!(
        errs[0].starts_with("f.gor:1: record 1: bad header"),
        "{}",
        errs[0]
    );
    assert!(
        errs[1].starts_with("f.gor:9: record 3: bad header"),
        "{}",
        errs[1]
    );
    assert!(errs[2].starts_with("f.gor:12: record 4:"), "{}", errs[2]);
    assert!(
        errs[3].contains("record 5: larger than 1024"),
        "{}",
        errs[3]
    );
    assert!(
        errs[4].contains("record 7: not ended by the separator"),
        "{}",
        errs[4]
    );
    assert_eq!(reader.skipped(), 5);
}

#[test]
fn empty_and_blank_files_have_no_records() {
    assert_eq!(read_all(b"").0.len(), 0);
    let (ok, bad) = read_all(b"\n\n");
    assert!(ok.is_empty() && bad.is_empty());
}

proptest::proptest! {
    #[test]
    fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        for r in Reader::new(&bytes[..], "p").max_record(256) {
            let _ = r;
        }
    }

    #[test]
    fn what_is_written_reads_back(payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let mut out = Vec::new();
        let r = rec(Kind::Request, "p", 3, &payload);
        if encode(&r, &mut out).is_ok() {
            let (ok, bad) = read_all(&out);
            proptest::prop_assert!(bad.is_empty());
            proptest::prop_assert_eq!(ok, vec![r]);
        }
    }
}
