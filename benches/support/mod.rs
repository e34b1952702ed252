//! What both benchmarks build their NOTIFYs from.

use bytes::Bytes;

/// A `req.hdrs_bin` block: (varint length, name, varint length, value) pairs, then `00 00`.
pub fn hdrs_bin(headers: &[(&str, &str)]) -> Bytes {
    let mut out = Vec::new();
    for (n, v) in headers {
        spoa_mirror::spop::varint::encode(n.len() as u64, &mut out);
        out.extend_from_slice(n.as_bytes());
        spoa_mirror::spop::varint::encode(v.len() as u64, &mut out);
        out.extend_from_slice(v.as_bytes());
    }
    out.extend_from_slice(&[0, 0]);
    Bytes::from(out)
}
