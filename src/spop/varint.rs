//! HAProxy's variable-length integer ("Peers" encoding, SPOE §3.1).
//!
//! Values below 240 take one byte. Larger values start with `0xF0 | (v & 0x0F)` and continue in
//! 7-bit groups whose high bit marks "more follows"; the offsets (−240, −128) make the mapping a
//! bijection, so there are no overlong forms. A `u64` needs at most 10 bytes.

use super::Error;
use bytes::BufMut;

/// Longest encoding of a `u64`.
pub const MAX_LEN: usize = 10;

/// Number of bytes [`encode`] writes for `value`.
pub fn encoded_len(mut value: u64) -> usize {
    if value < 240 {
        return 1;
    }
    let mut len = 1;
    value = (value - 240) >> 4;
    while value >= 128 {
        len += 1;
        value = (value - 128) >> 7;
    }
    len + 1
}

/// Appends the encoding of `value` to `dst`.
pub fn encode<B: BufMut>(mut value: u64, dst: &mut B) {
    if value < 240 {
        dst.put_u8(low_byte(value));
        return;
    }
    dst.put_u8(low_byte(value) | 0xF0);
    value = (value - 240) >> 4;
    while value >= 128 {
        dst.put_u8(low_byte(value) | 0x80);
        value = (value - 128) >> 7;
    }
    dst.put_u8(low_byte(value));
}

/// The least significant byte (the encoder keeps only the bits it masks in).
fn low_byte(value: u64) -> u8 {
    let [low, ..] = value.to_le_bytes();
    low
}

/// Decodes one varint from the start of `src`; returns the value and the bytes it took.
pub fn decode(src: &[u8]) -> Result<(u64, usize), Error> {
    let mut bytes = src.iter().copied();
    let first = bytes.next().ok_or(Error::UnexpectedEnd("varint"))?;
    if first < 240 {
        return Ok((u64::from(first), 1));
    }
    let mut value = u64::from(first);
    let mut shift = 4u32;
    let mut len = 1usize;
    loop {
        let byte = bytes.next().ok_or(Error::UnexpectedEnd("varint"))?;
        len += 1;
        if len > MAX_LEN {
            return Err(Error::VarintOverflow);
        }
        // Additive, not a bitwise OR: the whole byte, continuation bit included, is added.
        let part = u64::from(byte)
            .checked_shl(shift)
            .filter(|p| p >> shift == u64::from(byte))
            .ok_or(Error::VarintOverflow)?;
        value = value.checked_add(part).ok_or(Error::VarintOverflow)?;
        if byte < 128 {
            return Ok((value, len));
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The boundary table of spop-protocol.md §1.4.
    const TABLE: &[(u64, &str)] = &[
        (0, "00"),
        (239, "ef"),
        (240, "f000"),
        (2287, "ff7f"),
        (2288, "f08000"),
        (264431, "ffff7f"),
        (264432, "f0808000"),
        (33818863, "ffffff7f"),
        (33818864, "f080808000"),
        (16380, "fcf006"),
        (0xFFFF_FFFF, "fff0fefe7e"), // u32::MAX
        (u64::MAX, "fff0fefefefefefefe0e"),
    ];

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn boundary_table_round_trips() {
        for &(value, bytes) in TABLE {
            let mut out = Vec::new();
            encode(value, &mut out);
            assert_eq!(hex(&out), bytes, "encode {value}");
            assert_eq!(encoded_len(value), out.len(), "encoded_len {value}");
            assert_eq!(decode(&out), Ok((value, out.len())), "decode {bytes}");
        }
    }

    #[test]
    fn decode_ignores_following_bytes() {
        assert_eq!(decode(&unhex("fcf006ff")), Ok((16380, 3)));
    }

    #[test]
    fn truncated_is_unexpected_end() {
        for s in ["", "f0", "f080", "ff80808080"] {
            assert_eq!(
                decode(&unhex(s)),
                Err(Error::UnexpectedEnd("varint")),
                "{s:?}"
            );
        }
    }

    #[test]
    fn overflow_is_rejected() {
        // 11 bytes, and a 10-byte form whose last byte exceeds u64.
        assert_eq!(
            decode(&unhex("f0808080808080808080")),
            Err(Error::VarintOverflow)
        );
        assert_eq!(
            decode(&unhex("f080808080808080808000")),
            Err(Error::VarintOverflow)
        );
        assert_eq!(
            decode(&unhex("fff0fefefefefefefe0f")),
            Err(Error::VarintOverflow)
        );
        assert_eq!(
            decode(&unhex("fffffffffffffffffe7f")),
            Err(Error::VarintOverflow)
        );
    }

    #[test]
    fn exhaustive_two_and_three_byte_bijection() {
        let mut seen = 0u64;
        for b0 in 240u8..=255 {
            for b1 in 0u8..=255 {
                let two = [b0, b1];
                if b1 < 128 {
                    let (v, n) = decode(&two).unwrap();
                    assert_eq!(n, 2);
                    let mut out = Vec::new();
                    encode(v, &mut out);
                    assert_eq!(out, two);
                    seen += 1;
                } else {
                    for b2 in 0u8..128 {
                        let three = [b0, b1, b2];
                        let (v, n) = decode(&three).unwrap();
                        assert_eq!(n, 3);
                        let mut out = Vec::new();
                        encode(v, &mut out);
                        assert_eq!(out, three);
                        seen += 1;
                    }
                }
            }
        }
        // Every 2-byte value (2288 − 240) and every 3-byte value (264432 − 2288) exactly once.
        assert_eq!(seen, (2288 - 240) + (264432 - 2288));
    }
}
