//! The session driven with bytes only: no socket, no runtime.

use super::*;
use crate::spop::{Arg, Flags, TypedData};

fn cfg() -> SessionConfig {
    SessionConfig {
        max_frame_size: 16380,
        capabilities: Capabilities {
            fragmentation: true,
            pipelining: true,
            r#async: false,
        },
        max_reassembled_size: 1024,
        ack_noop: false,
    }
}

fn frame(frame_type: FrameType, flags: u32, sid: u64, fid: u64, payload: Payload) -> BytesMut {
    let mut out = BytesMut::new();
    Frame {
        header: FrameHeader {
            frame_type,
            flags: Flags(flags),
            stream_id: sid,
            frame_id: fid,
        },
        payload,
    }
    .encode(&mut out);
    out
}

fn hello(healthcheck: bool) -> BytesMut {
    let h = HaproxyHello {
        max_frame_size: 16380,
        capabilities: Capabilities::parse(b"pipelining,fragmentation"),
        engine_id: Some(Bytes::from_static(b"engine-1")),
        healthcheck,
    };
    frame(FrameType::HaproxyHello, 1, 0, 0, Payload::KvList(h.to_kv()))
}

fn message(path: &'static [u8]) -> Message {
    Message {
        name: Bytes::from_static(b"mirror"),
        args: vec![Arg {
            name: Bytes::from_static(b"arg_path"),
            value: TypedData::String(Bytes::from_static(path)),
        }],
    }
}

fn notify(sid: u64, fid: u64, flags: u32, messages: Vec<Message>) -> BytesMut {
    frame(
        FrameType::Notify,
        flags,
        sid,
        fid,
        Payload::Messages(messages),
    )
}

/// Feeds `input` and returns (frames taken, bytes written, events).
fn feed(s: &mut Session, input: &[u8]) -> (usize, BytesMut, Vec<Event>) {
    let mut buf = BytesMut::from(input);
    let mut out = BytesMut::new();
    let mut events = Vec::new();
    let n = s.receive(&mut buf, &mut out, &mut events);
    (n, out, events)
}

fn closed_with(events: &[Event]) -> Option<Status> {
    match events.last() {
        Some(Event::Close(c)) => c.status(),
        _ => None,
    }
}

#[test]
fn handshake_then_notify_carries_its_context() {
    let mut s = Session::new(cfg());
    let (n, out, events) = feed(&mut s, &hello(false));
    assert_eq!(n, 1);
    let reply = Frame::decode(Bytes::copy_from_slice(out.get(4..).unwrap())).unwrap();
    assert_eq!(reply.header.frame_type, FrameType::AgentHello);
    let Some(Event::Ready(agent)) = events.first() else {
        panic!("{events:?}")
    };
    assert_eq!(agent.max_frame_size, 16380);
    assert!(agent.capabilities.pipelining && agent.capabilities.fragmentation);

    let (n, out, events) = feed(&mut s, &notify(5, 9, 1, vec![message(b"/a")]));
    assert_eq!(
        (n, out.len()),
        (1, 0),
        "the session never writes ACKs itself"
    );
    assert_eq!(
        events,
        vec![Event::Notify(Notify {
            engine_id: Some(Bytes::from_static(b"engine-1")),
            stream_id: 5,
            frame_id: 9,
            messages: vec![message(b"/a")],
        })]
    );
    let mut ack = BytesMut::new();
    s.encode_ack(5, 9, &mut ack);
    assert_eq!(&ack[..], b"\x00\x00\x00\x07\x67\x00\x00\x00\x01\x05\x09");
}

#[test]
fn several_frames_in_one_read_keep_their_order() {
    let mut s = Session::new(cfg());
    let mut input = hello(false);
    input.extend_from_slice(&notify(1, 1, 1, vec![message(b"/1")]));
    input.extend_from_slice(&notify(3, 1, 1, vec![message(b"/3")]));
    input.extend_from_slice(&[0, 0]); // the start of the next frame stays in the buffer
    let mut buf = input;
    let (mut out, mut events) = (BytesMut::new(), Vec::new());
    assert_eq!(s.receive(&mut buf, &mut out, &mut events), 3);
    assert_eq!(&buf[..], &[0, 0]);
    let sids: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Notify(n) => Some(n.stream_id),
            _ => None,
        })
        .collect();
    assert_eq!(sids, vec![1, 3]);
}

#[test]
fn healthcheck_gets_its_hello_and_nothing_more() {
    let mut s = Session::new(cfg());
    let mut input = hello(true);
    input.extend_from_slice(&notify(1, 1, 1, vec![message(b"/x")]));
    let (n, out, events) = feed(&mut s, &input);
    assert_eq!(n, 1, "nothing is read after a health check");
    assert!(!out.is_empty());
    assert_eq!(events, vec![Event::Close(Close::Healthcheck)]);
    assert_eq!(closed_with(&events), None);
    assert!(s.is_closed());
}

#[test]
fn haproxy_disconnect_is_answered_with_status_0() {
    let mut s = Session::new(cfg());
    let d = Disconnect::new(Status::Normal);
    let input = frame(
        FrameType::HaproxyDisconnect,
        1,
        0,
        0,
        Payload::KvList(d.to_kv()),
    );
    let (_, _, events) = feed(&mut s, &input);
    assert_eq!(events, vec![Event::Close(Close::PeerDisconnect(d))]);
    assert_eq!(closed_with(&events), Some(Status::Normal));
}

#[test]
fn each_protocol_error_has_its_status() {
    let cases: Vec<(BytesMut, Status)> = vec![
        // NOTIFY before HELLO.
        (notify(1, 1, 1, vec![]), Status::InvalidFrame),
        // A frame announced larger than allowed before HELLO.
        (
            BytesMut::from(&(MAX_FRAME_BEFORE_HELLO + 1).to_be_bytes()[..]),
            Status::FrameTooBig,
        ),
        // HELLO without FIN.
        (
            frame(FrameType::HaproxyHello, 0, 0, 0, Payload::KvList(vec![])),
            Status::FragmentationNotSupported,
        ),
        // HELLO with a stream-id.
        (
            frame(FrameType::HaproxyHello, 1, 1, 0, Payload::KvList(vec![])),
            Status::InvalidFrame,
        ),
        // HELLO without supported-versions.
        (
            frame(FrameType::HaproxyHello, 1, 0, 0, Payload::KvList(vec![])),
            Status::NoVersion,
        ),
    ];
    for (input, status) in cases {
        let mut s = Session::new(cfg());
        let (_, _, events) = feed(&mut s, &input);
        assert_eq!(closed_with(&events), Some(status), "{events:?}");
    }

    let after_hello: Vec<(BytesMut, Status)> = vec![
        (hello(false), Status::InvalidFrame),
        (
            frame(FrameType::Ack, 1, 1, 1, Payload::Actions(vec![])),
            Status::InvalidFrame,
        ),
        (
            frame(FrameType::Unset, 1, 1, 1, Payload::Raw(Bytes::new())),
            Status::InterlacedFrames,
        ),
    ];
    for (input, status) in after_hello {
        let mut s = Session::new(cfg());
        feed(&mut s, &hello(false));
        let (_, _, events) = feed(&mut s, &input);
        assert_eq!(closed_with(&events), Some(status), "{events:?}");
        // Nothing is read after the close.
        let (n, _, events) = feed(&mut s, &notify(1, 1, 1, vec![]));
        assert_eq!((n, events.len()), (0, 0));
    }
}

#[test]
fn fragments_are_reassembled_bounded_and_checked() {
    let whole = notify(7, 2, 1, vec![message(b"/fragmented")]);
    // Split the NOTIFY's payload: header is 4 (length) + 1 + 4 + 1 + 1 bytes.
    let payload = whole.get(11..).unwrap();
    let (first, rest) = payload.split_at(5);
    let mut s = Session::new(cfg());
    feed(&mut s, &hello(false));
    let (_, _, events) = feed(
        &mut s,
        &frame(
            FrameType::Notify,
            0,
            7,
            2,
            Payload::Raw(Bytes::copy_from_slice(first)),
        ),
    );
    assert!(events.is_empty());
    let (_, _, events) = feed(
        &mut s,
        &frame(
            FrameType::Unset,
            1,
            7,
            2,
            Payload::Raw(Bytes::copy_from_slice(rest)),
        ),
    );
    let Some(Event::Notify(n)) = events.first() else {
        panic!("{events:?}")
    };
    assert_eq!((n.stream_id, n.frame_id), (7, 2));
    assert_eq!(n.messages, vec![message(b"/fragmented")]);

    // A second NOTIFY while one is in progress: interlaced.
    let mut s = Session::new(cfg());
    feed(&mut s, &hello(false));
    feed(
        &mut s,
        &frame(
            FrameType::Notify,
            0,
            7,
            2,
            Payload::Raw(Bytes::copy_from_slice(first)),
        ),
    );
    let (_, _, events) = feed(&mut s, &notify(9, 1, 1, vec![]));
    assert_eq!(closed_with(&events), Some(Status::InterlacedFrames));

    // Past max_reassembled_size (1024 here): frame too big.
    let mut s = Session::new(cfg());
    feed(&mut s, &hello(false));
    let big = Bytes::from(vec![0u8; 1000]);
    feed(
        &mut s,
        &frame(FrameType::Notify, 0, 1, 1, Payload::Raw(big.clone())),
    );
    let (_, _, events) = feed(&mut s, &frame(FrameType::Unset, 0, 1, 1, Payload::Raw(big)));
    assert_eq!(closed_with(&events), Some(Status::FrameTooBig));
}
