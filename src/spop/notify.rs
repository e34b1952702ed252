//! NOTIFY payload: a LIST-OF-MESSAGES (SPOE §3.2.6).
//!
//! ```text
//! LIST-OF-MESSAGES = [ MESSAGE-NAME:(varint length, bytes) NB-ARGS:u8 KV-LIST(NB-ARGS items) ]*
//! ```
//!
//! Arguments stay an ordered list: their names may be empty (`args src dst`) or repeated, so a
//! map keyed by name would lose data.

use super::data::{put_bytes, Reader, TypedData};
use super::Error;
use bytes::{BufMut, Bytes};

/// One message of a NOTIFY, as configured by `spoe-message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub name: Bytes,
    pub args: Vec<Arg>,
}

/// One argument of a message. `value` is [`TypedData::Null`] when HAProxy's fetch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub name: Bytes,
    pub value: TypedData,
}

impl Message {
    /// The first argument with this name, if any.
    pub fn arg(&self, name: &[u8]) -> Option<&TypedData> {
        self.args.iter().find(|a| a.name == name).map(|a| &a.value)
    }

    pub fn decode_list(r: &mut Reader) -> Result<Vec<Message>, Error> {
        let mut messages = Vec::new();
        while !r.is_empty() {
            let name = r.bytes("message name")?;
            let nb_args = r.u8("NB-ARGS")?;
            let mut args = Vec::with_capacity(usize::from(nb_args));
            for _ in 0..nb_args {
                // Argument names may be empty, unlike HELLO keys.
                let name = r.bytes("argument name")?;
                let value = TypedData::decode(r)?;
                args.push(Arg { name, value });
            }
            messages.push(Message { name, args });
        }
        Ok(messages)
    }

    pub fn encode_list<B: BufMut>(messages: &[Message], dst: &mut B) {
        for m in messages {
            put_bytes(&m.name, dst);
            // NB-ARGS is one byte; a message built with more args is cut at 255 so the frame
            // stays well-formed.
            let n = u8::try_from(m.args.len()).unwrap_or(u8::MAX);
            dst.put_u8(n);
            for a in m.args.iter().take(usize::from(n)) {
                put_bytes(&a.name, dst);
                a.value.encode(dst);
            }
        }
    }
}
