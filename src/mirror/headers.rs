//! Pure parsers for the two header formats HAProxy can hand over in `arg_hdrs`.
//!
//! ```text
//! req.hdrs_bin = [ NAME-LEN:varint NAME VALUE-LEN:varint VALUE ]* 00 00      (BINARY)
//! req.hdrs     = [ NAME ":" OWS VALUE OWS CRLF ]* CRLF                        (STRING)
//! ```
//!
//! Both keep the client's order and duplicates. Names and values stay slices of the frame
//! buffer ([`HeaderValue::from_maybe_shared`] does not copy a [`Bytes`]).

use crate::spop::varint;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};

/// Headers in wire order, duplicates kept.
pub type HeaderList = Vec<(HeaderName, HeaderValue)>;

/// Why a header block was rejected; the request it belongs to is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("header block ends without the empty terminating pair")]
    MissingTerminator,
    #[error("{0} bytes after the end of the header block")]
    TrailingGarbage(usize),
    #[error("header with an empty name")]
    EmptyName,
    #[error("header length does not fit the block")]
    BadLength,
    #[error("invalid header name")]
    InvalidName,
    #[error("invalid header value")]
    InvalidValue,
    #[error("header line without a colon")]
    MissingColon,
    #[error("obsolete line folding")]
    ObsFold,
}

/// Parses `req.hdrs_bin`. The block must end with `00 00` and nothing may follow it.
pub fn parse_hdrs_bin(block: &Bytes) -> Result<HeaderList, HeaderError> {
    let mut headers = HeaderList::with_capacity(capacity_for(block));
    let mut pos = 0usize;
    loop {
        let name = take_string(block, &mut pos)?;
        let value = take_string(block, &mut pos)?;
        match (name.is_empty(), value.is_empty()) {
            (true, true) => break,
            (true, false) => return Err(HeaderError::EmptyName),
            _ => headers.push(header(name, value)?),
        }
    }
    let rest = block.len().saturating_sub(pos);
    if rest != 0 {
        return Err(HeaderError::TrailingGarbage(rest));
    }
    Ok(headers)
}

/// Room for the headers of a block, so the list is allocated once: browser headers average
/// 30-40 bytes; one more slot for the Content-Length that may be added.
fn capacity_for(block: &Bytes) -> usize {
    (block.len() / 24 + 1).min(64)
}

/// One varint-length-prefixed string starting at `*pos`; advances `*pos` past it.
fn take_string(block: &Bytes, pos: &mut usize) -> Result<Bytes, HeaderError> {
    let rest = block.get(*pos..).ok_or(HeaderError::MissingTerminator)?;
    if rest.is_empty() {
        return Err(HeaderError::MissingTerminator);
    }
    let (len, width) = varint::decode(rest).map_err(|_| HeaderError::MissingTerminator)?;
    let start = pos.checked_add(width).ok_or(HeaderError::BadLength)?;
    let len = usize::try_from(len).map_err(|_| HeaderError::BadLength)?;
    let end = start.checked_add(len).ok_or(HeaderError::BadLength)?;
    if end > block.len() {
        return Err(HeaderError::BadLength);
    }
    *pos = end;
    Ok(block.slice(start..end))
}

/// Parses the text of `req.hdrs` (or a `regsub` of it). Lines end with CRLF (a bare LF is
/// accepted); the block ends at the first empty line or at the end of the string, so a
/// rewritten block that lost its final CRLF still parses. Leading and trailing whitespace of
/// a value is not part of it (RFC 9110 §5.5).
pub fn parse_hdrs_text(block: &Bytes) -> Result<HeaderList, HeaderError> {
    let mut headers = HeaderList::with_capacity(capacity_for(block));
    let mut pos = 0usize;
    while pos < block.len() {
        let rest = block.get(pos..).unwrap_or_default();
        let (line_len, eol_len) = match rest.iter().position(|&b| b == b'\n') {
            Some(lf) if lf > 0 && rest.get(lf - 1) == Some(&b'\r') => (lf - 1, 2),
            Some(lf) => (lf, 1),
            None => (rest.len(), 0),
        };
        let line_start = pos;
        let line_end = pos + line_len;
        pos = line_end + eol_len;
        if line_len == 0 {
            let garbage = block.len().saturating_sub(pos);
            if garbage != 0 {
                return Err(HeaderError::TrailingGarbage(garbage));
            }
            break;
        }
        let line = block.slice(line_start..line_end);
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return Err(HeaderError::ObsFold);
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(HeaderError::MissingColon)?;
        if colon == 0 {
            return Err(HeaderError::EmptyName);
        }
        let name = line.slice(..colon);
        let value = trim_ows(line.slice(colon + 1..));
        headers.push(header(name, value)?);
    }
    Ok(headers)
}

fn trim_ows(mut v: Bytes) -> Bytes {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    v.truncate(end);
    v.slice(start.min(end)..)
}

fn header(name: Bytes, value: Bytes) -> Result<(HeaderName, HeaderValue), HeaderError> {
    let name = HeaderName::from_bytes(&name).map_err(|_| HeaderError::InvalidName)?;
    let value = HeaderValue::from_maybe_shared(value).map_err(|_| HeaderError::InvalidValue)?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    /// Encodes `pairs` the way HAProxy's `req.hdrs_bin` does, terminator included.
    fn bin(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in pairs {
            varint::encode(n.len() as u64, &mut out);
            out.put_slice(n);
            varint::encode(v.len() as u64, &mut out);
            out.put_slice(v);
        }
        out.put_slice(&[0, 0]);
        out
    }

    fn names_values(h: &HeaderList) -> Vec<(String, Vec<u8>)> {
        h.iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn hdrs_bin_byte_by_byte() {
        // host: a, x: "" (empty value), x: 2 (duplicate), then 00 00.
        let block = Bytes::from_static(b"\x04host\x01a\x01x\x00\x01x\x012\x00\x00");
        let h = parse_hdrs_bin(&block).unwrap();
        assert_eq!(
            names_values(&h),
            vec![
                ("host".into(), b"a".to_vec()),
                ("x".into(), b"".to_vec()),
                ("x".into(), b"2".to_vec()),
            ]
        );
    }

    #[test]
    fn hdrs_bin_empty_block_is_only_terminator() {
        assert_eq!(
            parse_hdrs_bin(&Bytes::from_static(b"\x00\x00"))
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn hdrs_bin_zero_bytes_is_missing_terminator() {
        assert_eq!(
            parse_hdrs_bin(&Bytes::new()),
            Err(HeaderError::MissingTerminator)
        );
    }

    #[test]
    fn hdrs_bin_missing_terminator() {
        let mut b = bin(&[(b"a", b"b")]);
        b.truncate(b.len() - 2);
        assert_eq!(
            parse_hdrs_bin(&Bytes::from(b.clone())),
            Err(HeaderError::MissingTerminator)
        );
        // Half a terminator: the name is empty, the value length is missing.
        b.push(0);
        assert_eq!(
            parse_hdrs_bin(&Bytes::from(b)),
            Err(HeaderError::MissingTerminator)
        );
    }

    #[test]
    fn hdrs_bin_garbage_after_terminator() {
        let mut b = bin(&[(b"a", b"b")]);
        b.extend_from_slice(b"xyz");
        assert_eq!(
            parse_hdrs_bin(&Bytes::from(b)),
            Err(HeaderError::TrailingGarbage(3))
        );
    }

    #[test]
    fn hdrs_bin_empty_name_with_value() {
        let b = Bytes::from_static(b"\x00\x01v\x00\x00");
        assert_eq!(parse_hdrs_bin(&b), Err(HeaderError::EmptyName));
    }

    #[test]
    fn hdrs_bin_length_past_the_end() {
        let b = Bytes::from_static(b"\x04hos");
        assert_eq!(parse_hdrs_bin(&b), Err(HeaderError::BadLength));
        // A value length that runs past the block.
        let b = Bytes::from_static(b"\x01a\x09bc\x00\x00");
        assert_eq!(parse_hdrs_bin(&b), Err(HeaderError::BadLength));
        // A huge varint length must not overflow.
        let b = Bytes::from_static(b"\xff\xf0\xfe\xfe\xfe\xfe\xfe\xfe\xfe\x0e");
        assert_eq!(parse_hdrs_bin(&b), Err(HeaderError::BadLength));
    }

    #[test]
    fn hdrs_bin_truncated_varint() {
        let b = Bytes::from_static(b"\x01a\xf0");
        assert_eq!(parse_hdrs_bin(&b), Err(HeaderError::MissingTerminator));
    }

    #[test]
    fn hdrs_bin_4kib_value_uses_a_two_byte_varint() {
        // 240 and 2287 are the smallest and largest 2-byte varints; 4096 takes 3 bytes.
        let cases: [(usize, &[u8]); 3] = [
            (240, b"\xf0\x00"),
            (2287, b"\xff\x7f"),
            (4096, b"\xf0\xf1\x00"),
        ];
        for (len, prefix) in cases {
            let value = vec![b'v'; len];
            let b = bin(&[(b"x-long", &value)]);
            assert_eq!(b.get(7..7 + prefix.len()), Some(prefix), "len {len}");
            let h = parse_hdrs_bin(&Bytes::from(b)).unwrap();
            assert_eq!(h.len(), 1);
            assert_eq!(h[0].1.as_bytes(), &value[..]);
        }
    }

    #[test]
    fn hdrs_bin_rejects_invalid_name_and_value() {
        let b = Bytes::from(bin(&[(b"bad name", b"v")]));
        assert_eq!(parse_hdrs_bin(&b), Err(HeaderError::InvalidName));
        let b = Bytes::from(bin(&[(b"n", b"a\r\nb")]));
        assert_eq!(parse_hdrs_bin(&b), Err(HeaderError::InvalidValue));
    }

    #[test]
    fn hdrs_bin_keeps_obs_text_and_is_zero_copy() {
        let b = Bytes::from(bin(&[(b"x", b"caf\xc3\xa9 \xff")]));
        let h = parse_hdrs_bin(&b).unwrap();
        assert_eq!(h[0].1.as_bytes(), b"caf\xc3\xa9 \xff");
        // The value points into the block.
        let range = b.as_ptr_range();
        assert!(range.contains(&h[0].1.as_bytes().as_ptr()));
    }

    #[test]
    fn hdrs_text_basic() {
        let b = Bytes::from_static(b"host: a\r\nx-dup: 1\r\nx-empty:\r\nx-dup:  2 \r\n\r\n");
        let h = parse_hdrs_text(&b).unwrap();
        assert_eq!(
            names_values(&h),
            vec![
                ("host".into(), b"a".to_vec()),
                ("x-dup".into(), b"1".to_vec()),
                ("x-empty".into(), b"".to_vec()),
                ("x-dup".into(), b"2".to_vec()),
            ]
        );
    }

    #[test]
    fn hdrs_text_without_final_empty_line_and_bare_lf() {
        let b = Bytes::from_static(b"a: 1\nb: 2");
        let h = parse_hdrs_text(&b).unwrap();
        assert_eq!(
            names_values(&h),
            vec![("a".into(), b"1".to_vec()), ("b".into(), b"2".to_vec())]
        );
        assert_eq!(parse_hdrs_text(&Bytes::new()).unwrap().len(), 0);
        assert_eq!(
            parse_hdrs_text(&Bytes::from_static(b"\r\n")).unwrap().len(),
            0
        );
    }

    #[test]
    fn hdrs_text_upper_case_names_are_lowered() {
        let h = parse_hdrs_text(&Bytes::from_static(b"X-Foo: Bar\r\n\r\n")).unwrap();
        assert_eq!(names_values(&h), vec![("x-foo".into(), b"Bar".to_vec())]);
    }

    #[test]
    fn hdrs_text_errors() {
        let cases: &[(&[u8], HeaderError)] = &[
            (b"a: 1\r\n\r\nb: 2\r\n", HeaderError::TrailingGarbage(6)),
            (b"no colon\r\n\r\n", HeaderError::MissingColon),
            (b": v\r\n\r\n", HeaderError::EmptyName),
            (b"a: 1\r\n folded\r\n\r\n", HeaderError::ObsFold),
            (b"bad name: v\r\n\r\n", HeaderError::InvalidName),
            (b"a: x\x00y\r\n\r\n", HeaderError::InvalidValue),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_hdrs_text(&Bytes::from_static(input)),
                Err(*want),
                "{input:?}"
            );
        }
    }

    #[test]
    fn hdrs_text_4kib_value() {
        let mut text = b"x-long: ".to_vec();
        text.extend(std::iter::repeat(b'z').take(4096));
        text.extend_from_slice(b"\r\n\r\n");
        let h = parse_hdrs_text(&Bytes::from(text)).unwrap();
        assert_eq!(h[0].1.as_bytes().len(), 4096);
    }
}
