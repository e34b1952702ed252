//! Building messages for the unit tests of this module.

use super::{parse, MirrorRequest, Notes};
use crate::spop::{Arg, Message, TypedData};
use bytes::Bytes;

pub fn s(v: &'static [u8]) -> TypedData {
    TypedData::String(Bytes::from_static(v))
}

pub fn b(v: &'static [u8]) -> TypedData {
    TypedData::Binary(Bytes::from_static(v))
}

pub fn msg(name: &'static str, args: Vec<(&'static str, TypedData)>) -> Message {
    Message {
        name: Bytes::from_static(name.as_bytes()),
        args: args
            .into_iter()
            .map(|(n, value)| Arg {
                name: Bytes::from_static(n.as_bytes()),
                value,
            })
            .collect(),
    }
}

/// The documented `spoe-message mirror`.
pub fn standard(
    method: &'static [u8],
    path: &'static [u8],
    hdrs: &'static [u8],
    body: &'static [u8],
) -> Message {
    msg(
        "mirror",
        vec![
            ("arg_method", s(method)),
            ("arg_path", s(path)),
            ("arg_ver", s(b"1.1")),
            ("arg_hdrs", b(hdrs)),
            ("arg_body", b(body)),
        ],
    )
}

pub fn parse_ok(m: &Message) -> MirrorRequest {
    parse(m, &mut Notes::default()).unwrap()
}

pub fn header_names(r: &MirrorRequest) -> Vec<&str> {
    r.headers.iter().map(|(n, _)| n.as_str()).collect()
}
