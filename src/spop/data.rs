//! Typed data and KV-LISTs (SPOE §3.1), and the bounds-checked [`Reader`] every decoder uses.
//!
//! ```text
//! TYPED-DATA = TYPE:4 bits (low) | FLAGS:4 bits (high) | DATA
//! KV-LIST    = [ KV-NAME:(varint length, bytes) KV-VALUE:TYPED-DATA ]*
//! ```

use super::{varint, Error};
use bytes::{BufMut, Bytes};
use std::net::{Ipv4Addr, Ipv6Addr};

const T_NULL: u8 = 0;
const T_BOOL: u8 = 1;
const T_INT32: u8 = 2;
const T_UINT32: u8 = 3;
const T_INT64: u8 = 4;
const T_UINT64: u8 = 5;
const T_IPV4: u8 = 6;
const T_IPV6: u8 = 7;
const T_STRING: u8 = 8;
const T_BINARY: u8 = 9;
/// BOOL carries its value in bit 0 of the flags nibble.
const BOOL_TRUE: u8 = 0x10;

/// One typed value. Strings and binaries are raw bytes (not necessarily UTF-8) that share the
/// frame's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypedData {
    Null,
    Bool(bool),
    Int32(i32),
    Uint32(u32),
    Int64(i64),
    Uint64(u64),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    String(Bytes),
    Binary(Bytes),
}

impl TypedData {
    /// Any of the four integer types as a `u64` (HAProxy treats them all alike).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            TypedData::Int32(v) => u64::try_from(v).ok(),
            TypedData::Uint32(v) => Some(u64::from(v)),
            TypedData::Int64(v) => u64::try_from(v).ok(),
            TypedData::Uint64(v) => Some(v),
            _ => None,
        }
    }

    /// The bytes of a STRING or BINARY.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            TypedData::String(b) | TypedData::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// A short name for log lines.
    pub fn type_name(&self) -> &'static str {
        match self {
            TypedData::Null => "NULL",
            TypedData::Bool(_) => "BOOL",
            TypedData::Int32(_) => "INT32",
            TypedData::Uint32(_) => "UINT32",
            TypedData::Int64(_) => "INT64",
            TypedData::Uint64(_) => "UINT64",
            TypedData::Ipv4(_) => "IPV4",
            TypedData::Ipv6(_) => "IPV6",
            TypedData::String(_) => "STRING",
            TypedData::Binary(_) => "BINARY",
        }
    }

    pub fn decode(r: &mut Reader) -> Result<TypedData, Error> {
        let byte = r.u8("typed data")?;
        Ok(match byte & 0x0F {
            T_NULL => TypedData::Null,
            // The spec says "first bit of the flags"; HAProxy tests (byte & 0xF0) == 0x10.
            // Following the spec, any value with bit 0 of the flags set is true.
            T_BOOL => TypedData::Bool(byte & BOOL_TRUE != 0),
            // Signed integers travel as the 64-bit two's-complement pattern (no zig-zag).
            T_INT32 => TypedData::Int32(
                i32::try_from(to_signed(r.varint()?)).map_err(|_| Error::IntOutOfRange("INT32"))?,
            ),
            T_UINT32 => TypedData::Uint32(
                u32::try_from(r.varint()?).map_err(|_| Error::IntOutOfRange("UINT32"))?,
            ),
            T_INT64 => TypedData::Int64(to_signed(r.varint()?)),
            T_UINT64 => TypedData::Uint64(r.varint()?),
            T_IPV4 => {
                let b = r.take(4, "IPV4")?;
                TypedData::Ipv4(Ipv4Addr::from(
                    <[u8; 4]>::try_from(&b[..]).map_err(|_| Error::UnexpectedEnd("IPV4"))?,
                ))
            }
            T_IPV6 => {
                let b = r.take(16, "IPV6")?;
                TypedData::Ipv6(Ipv6Addr::from(
                    <[u8; 16]>::try_from(&b[..]).map_err(|_| Error::UnexpectedEnd("IPV6"))?,
                ))
            }
            T_STRING => TypedData::String(r.bytes("STRING")?),
            T_BINARY => TypedData::Binary(r.bytes("BINARY")?),
            other => return Err(Error::UnknownDataType(other)),
        })
    }

    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        match self {
            TypedData::Null => dst.put_u8(T_NULL),
            TypedData::Bool(v) => dst.put_u8(T_BOOL | if *v { BOOL_TRUE } else { 0 }),
            TypedData::Int32(v) => {
                dst.put_u8(T_INT32);
                varint::encode(to_unsigned(i64::from(*v)), dst);
            }
            TypedData::Uint32(v) => {
                dst.put_u8(T_UINT32);
                varint::encode(u64::from(*v), dst);
            }
            TypedData::Int64(v) => {
                dst.put_u8(T_INT64);
                varint::encode(to_unsigned(*v), dst);
            }
            TypedData::Uint64(v) => {
                dst.put_u8(T_UINT64);
                varint::encode(*v, dst);
            }
            TypedData::Ipv4(a) => {
                dst.put_u8(T_IPV4);
                dst.put_slice(&a.octets());
            }
            TypedData::Ipv6(a) => {
                dst.put_u8(T_IPV6);
                dst.put_slice(&a.octets());
            }
            TypedData::String(b) => {
                dst.put_u8(T_STRING);
                put_bytes(b, dst);
            }
            TypedData::Binary(b) => {
                dst.put_u8(T_BINARY);
                put_bytes(b, dst);
            }
        }
    }
}

/// The 64-bit two's-complement pattern a signed integer travels as (no zig-zag).
fn to_unsigned(v: i64) -> u64 {
    u64::from_be_bytes(v.to_be_bytes())
}

/// The signed integer a 64-bit two's-complement pattern stands for.
fn to_signed(v: u64) -> i64 {
    i64::from_be_bytes(v.to_be_bytes())
}

/// Appends a varint length followed by the bytes.
pub(crate) fn put_bytes<B: BufMut>(bytes: &[u8], dst: &mut B) {
    // A usize always fits a u64 on the targets Rust supports.
    varint::encode(u64::try_from(bytes.len()).unwrap_or(u64::MAX), dst);
    dst.put_slice(bytes);
}

/// One KV-LIST item: a name (no type byte) and a typed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub name: Bytes,
    pub value: TypedData,
}

impl Kv {
    pub fn new(name: &'static str, value: TypedData) -> Kv {
        Kv {
            name: Bytes::from_static(name.as_bytes()),
            value,
        }
    }

    /// Decodes KV items until the reader is empty.
    pub fn decode_list(r: &mut Reader) -> Result<Vec<Kv>, Error> {
        let mut items = Vec::new();
        while !r.is_empty() {
            let name = r.bytes("KV name")?;
            if name.is_empty() {
                // HAProxy rejects an empty key as an invalid frame.
                return Err(Error::EmptyKey);
            }
            let value = TypedData::decode(r)?;
            items.push(Kv { name, value });
        }
        Ok(items)
    }

    pub fn encode_list<B: BufMut>(items: &[Kv], dst: &mut B) {
        for kv in items {
            put_bytes(&kv.name, dst);
            kv.value.encode(dst);
        }
    }
}

/// A cursor over a frame's bytes. Every read checks what is left first and slices without
/// copying, so decoded strings point into the frame buffer.
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
}

impl Reader {
    pub fn new(buf: Bytes) -> Reader {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The bytes not read yet.
    pub fn rest(self) -> Bytes {
        self.buf
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, Error> {
        let b = *self.buf.first().ok_or(Error::UnexpectedEnd(what))?;
        self.advance(1);
        Ok(b)
    }

    pub fn u32_be(&mut self, what: &'static str) -> Result<u32, Error> {
        let b = self.take(4, what)?;
        let arr = <[u8; 4]>::try_from(&b[..]).map_err(|_| Error::UnexpectedEnd(what))?;
        Ok(u32::from_be_bytes(arr))
    }

    pub fn varint(&mut self) -> Result<u64, Error> {
        let (value, len) = varint::decode(&self.buf)?;
        self.advance(len);
        Ok(value)
    }

    /// `n` bytes, or an error if fewer are left.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<Bytes, Error> {
        if n > self.buf.len() {
            return Err(Error::UnexpectedEnd(what));
        }
        Ok(self.buf.split_to(n))
    }

    /// A varint length followed by that many bytes (STRING/BINARY data, KV names).
    pub fn bytes(&mut self, what: &'static str) -> Result<Bytes, Error> {
        // A length that does not even fit a usize is longer than what is left. `take` checks
        // the rest before splitting: a hostile length never becomes an allocation.
        let len = usize::try_from(self.varint()?).map_err(|_| Error::UnexpectedEnd(what))?;
        self.take(len, what)
    }

    fn advance(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        let _ = self.buf.split_to(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_one(bytes: &'static [u8]) -> Result<TypedData, Error> {
        let mut r = Reader::new(Bytes::from_static(bytes));
        let v = TypedData::decode(&mut r)?;
        assert!(r.is_empty(), "left over bytes");
        Ok(v)
    }

    #[test]
    fn int32_and_uint32_out_of_range_are_refused() {
        let int = |t: u8, v: u64| {
            let mut b = vec![t];
            varint::encode(v, &mut b);
            TypedData::decode(&mut Reader::new(Bytes::from(b)))
        };
        let i32_min = u64::from_be_bytes(i64::from(i32::MIN).to_be_bytes());
        assert_eq!(int(T_INT32, i32_min), Ok(TypedData::Int32(i32::MIN)));
        assert_eq!(int(T_INT32, 1 << 31), Err(Error::IntOutOfRange("INT32")));
        assert_eq!(
            int(T_INT32, i32_min - 1),
            Err(Error::IntOutOfRange("INT32"))
        );
        assert_eq!(int(T_UINT32, 1 << 32), Err(Error::IntOutOfRange("UINT32")));
        assert_eq!(
            crate::spop::ProtocolError::Decode("NOTIFY", Error::IntOutOfRange("INT32")).status(),
            crate::spop::Status::InvalidFrame
        );
    }

    fn encoded(v: &TypedData) -> Vec<u8> {
        let mut out = Vec::new();
        v.encode(&mut out);
        out
    }

    #[test]
    fn all_ten_types_golden_bytes() {
        let cases: &[(TypedData, &[u8])] = &[
            (TypedData::Null, b"\x00"),
            (TypedData::Bool(true), b"\x11"),
            (TypedData::Bool(false), b"\x01"),
            (
                TypedData::Int32(-1),
                b"\x02\xff\xf0\xfe\xfe\xfe\xfe\xfe\xfe\xfe\x0e",
            ),
            (TypedData::Int32(5), b"\x02\x05"),
            (TypedData::Uint32(16380), b"\x03\xfc\xf0\x06"),
            (
                TypedData::Int64(-1),
                b"\x04\xff\xf0\xfe\xfe\xfe\xfe\xfe\xfe\xfe\x0e",
            ),
            (TypedData::Int64(240), b"\x04\xf0\x00"),
            (
                TypedData::Uint64(u64::MAX),
                b"\x05\xff\xf0\xfe\xfe\xfe\xfe\xfe\xfe\xfe\x0e",
            ),
            (
                TypedData::Ipv4(Ipv4Addr::new(10, 9, 0, 1)),
                b"\x06\x0a\x09\x00\x01",
            ),
            (
                TypedData::Ipv6(Ipv6Addr::LOCALHOST),
                b"\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01",
            ),
            (
                TypedData::String(Bytes::from_static(b"GET")),
                b"\x08\x03GET",
            ),
            (TypedData::String(Bytes::new()), b"\x08\x00"),
            (
                TypedData::Binary(Bytes::from_static(b"\x00\xff")),
                b"\x09\x02\x00\xff",
            ),
        ];
        for (value, bytes) in cases {
            assert_eq!(&encoded(value)[..], *bytes, "encode {value:?}");
            assert_eq!(decode_one(bytes).as_ref(), Ok(value), "decode {bytes:02x?}");
        }
    }

    #[test]
    fn bool_follows_the_spec_flag_bit() {
        // F13: 0x31 has flag bit 0 set, so it is true per the spec.
        assert_eq!(decode_one(b"\x31"), Ok(TypedData::Bool(true)));
        assert_eq!(decode_one(b"\x21"), Ok(TypedData::Bool(false)));
    }

    #[test]
    fn reserved_types_are_rejected() {
        for t in 10u8..=15 {
            let mut r = Reader::new(Bytes::copy_from_slice(&[t, 0, 0]));
            assert_eq!(TypedData::decode(&mut r), Err(Error::UnknownDataType(t)));
        }
    }

    #[test]
    fn string_longer_than_payload_is_rejected() {
        // F9: length 5 with 2 bytes left.
        assert_eq!(
            decode_one(b"\x08\x05ab"),
            Err(Error::UnexpectedEnd("STRING"))
        );
        // A length near u64::MAX never allocates.
        assert_eq!(
            decode_one(b"\x09\xff\xf0\xfe\xfe\xfe\xfe\xfe\xfe\xfe\x0e"),
            Err(Error::UnexpectedEnd("BINARY"))
        );
    }

    #[test]
    fn strings_are_raw_bytes() {
        // F14: invalid UTF-8 and NUL are kept as they are.
        assert_eq!(
            decode_one(b"\x08\x03\xff\x00\xc3"),
            Ok(TypedData::String(Bytes::from_static(b"\xff\x00\xc3")))
        );
    }

    #[test]
    fn kv_list_rejects_empty_key() {
        let mut r = Reader::new(Bytes::from_static(b"\x00\x08\x00"));
        assert_eq!(Kv::decode_list(&mut r), Err(Error::EmptyKey));
    }
}
