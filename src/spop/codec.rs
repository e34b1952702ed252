//! Cutting a byte stream into frames: the 4-byte big-endian length prefix, checked against the
//! max-frame-size before a single byte of the frame is buffered for it.

use super::{Error, LENGTH_PREFIX, MIN_FRAME_LEN};
use bytes::{Buf, Bytes, BytesMut};

/// Splits frames off a read buffer.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_size: u32,
}

impl FrameDecoder {
    pub fn new(max_frame_size: u32) -> FrameDecoder {
        FrameDecoder { max_frame_size }
    }

    /// Applies from the next frame on (after the handshake: the negotiated size).
    pub fn set_max_frame_size(&mut self, max: u32) {
        self.max_frame_size = max;
    }

    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// Looks at the length prefix only: `Ok(Some(n))` when a whole frame of `n` bytes (prefix
    /// excluded) is buffered, `Ok(None)` when more bytes are needed. The length is validated as
    /// soon as its 4 bytes are in, so a hostile prefix (an HTTP request's `GET `, a TLS
    /// ClientHello's `16 03 01 ..`) is refused before anything is reserved for it.
    pub fn check(&self, buf: &[u8]) -> Result<Option<usize>, Error> {
        let Some(prefix) = buf.get(..LENGTH_PREFIX) else {
            return Ok(None);
        };
        let mut arr = [0u8; LENGTH_PREFIX];
        arr.copy_from_slice(prefix);
        let len = u32::from_be_bytes(arr);
        if len > self.max_frame_size {
            return Err(Error::FrameTooBig {
                len: u64::from(len),
                max: self.max_frame_size,
            });
        }
        let len = usize::try_from(len).map_err(|_| Error::FrameTooBig {
            len: u64::from(len),
            max: self.max_frame_size,
        })?;
        if len < MIN_FRAME_LEN {
            return Err(Error::FrameTooShort(len));
        }
        if buf.len() - LENGTH_PREFIX < len {
            return Ok(None);
        }
        Ok(Some(len))
    }

    /// Takes the next whole frame (prefix removed) off `buf`, sharing its memory.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, Error> {
        match self.check(buf)? {
            Some(len) => {
                buf.advance(LENGTH_PREFIX);
                Ok(Some(buf.split_to(len).freeze()))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_whole_prefix_and_frame() {
        let d = FrameDecoder::new(16380);
        assert_eq!(d.check(b""), Ok(None));
        assert_eq!(d.check(b"\x00\x00\x00"), Ok(None));
        assert_eq!(
            d.check(b"\x00\x00\x00\x07\x67\x00\x00\x00\x01\x01"),
            Ok(None)
        );
        assert_eq!(
            d.check(b"\x00\x00\x00\x07\x67\x00\x00\x00\x01\x01\x01"),
            Ok(Some(7))
        );
    }

    #[test]
    fn short_lengths_are_invalid() {
        // F3: declared lengths 0..=6 can never hold a header.
        let d = FrameDecoder::new(16380);
        for len in 0u8..7 {
            assert_eq!(
                d.check(&[0, 0, 0, len]),
                Err(Error::FrameTooShort(usize::from(len)))
            );
        }
    }

    #[test]
    fn oversized_and_non_spop_lengths_are_refused_at_once() {
        // F4 / F5: `GET ` and a TLS ClientHello read as lengths.
        let d = FrameDecoder::new(16380);
        assert_eq!(
            d.check(b"\x00\x00\x3f\xfd"),
            Err(Error::FrameTooBig {
                len: 16381,
                max: 16380
            })
        );
        assert!(matches!(
            d.check(b"GET / HTTP/1.1\r\n"),
            Err(Error::FrameTooBig { .. })
        ));
        assert!(matches!(
            d.check(b"\x16\x03\x01\x02\x00"),
            Err(Error::FrameTooBig { .. })
        ));
    }

    #[test]
    fn several_frames_in_one_buffer() {
        // F1: frames are split off one by one, sharing the buffer.
        let d = FrameDecoder::new(16380);
        let mut buf = BytesMut::from(&b"\x00\x00\x00\x07\x67\x00\x00\x00\x01\x01\x01\x00\x00\x00\x07\x67\x00\x00\x00\x01\x03\x01\x00"[..]);
        assert_eq!(
            d.decode(&mut buf).unwrap().unwrap(),
            &b"\x67\x00\x00\x00\x01\x01\x01"[..]
        );
        assert_eq!(
            d.decode(&mut buf).unwrap().unwrap(),
            &b"\x67\x00\x00\x00\x01\x03\x01"[..]
        );
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert_eq!(&buf[..], b"\x00");
    }
}
