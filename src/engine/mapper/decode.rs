//! Frame decoding: binary frames are decompressed per the venue's
//! `frames.compression`, then everything must be UTF-8 text.

use std::io::Read;

use flate2::read::{DeflateDecoder, GzDecoder, ZlibDecoder};

use super::MapError;
use crate::engine::venue::Compression;

/// A frame as received.
#[derive(Debug, Clone, Copy)]
pub enum RawFrame<'a> {
    /// A text frame.
    Text(&'a str),
    /// A binary frame.
    Binary(&'a [u8]),
}

impl RawFrame<'_> {
    /// Size in bytes on the wire.
    pub fn len(&self) -> usize {
        match self {
            RawFrame::Text(t) => t.len(),
            RawFrame::Binary(b) => b.len(),
        }
    }

    /// Whether the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Decode a frame to text. Text frames are borrowed; binary frames are
/// inflated into `buf` (reused between frames), never beyond `limit` bytes.
pub(super) fn decode<'a>(
    frame: RawFrame<'a>,
    compression: Compression,
    limit: usize,
    buf: &'a mut Vec<u8>,
) -> Result<&'a str, MapError> {
    let bytes = match frame {
        RawFrame::Text(t) => return Ok(t),
        RawFrame::Binary(b) => b,
    };
    let method = match compression {
        Compression::Auto if bytes.starts_with(&[0x1f, 0x8b]) => Compression::Gzip,
        Compression::Auto if bytes.first() == Some(&0x78) => Compression::Zlib,
        Compression::Auto => Compression::None,
        other => other,
    };
    buf.clear();
    let cap = limit as u64 + 1;
    let read = match method {
        Compression::None | Compression::Auto => {
            return std::str::from_utf8(bytes).map_err(|_| MapError::Utf8);
        }
        Compression::Gzip => GzDecoder::new(bytes).take(cap).read_to_end(buf),
        Compression::Deflate => DeflateDecoder::new(bytes).take(cap).read_to_end(buf),
        Compression::Zlib => ZlibDecoder::new(bytes).take(cap).read_to_end(buf),
    };
    read.map_err(|e| MapError::Decode(e.to_string()))?;
    if buf.len() > limit {
        return Err(MapError::TooLarge {
            size: buf.len(),
            limit,
        });
    }
    std::str::from_utf8(buf).map_err(|_| MapError::Utf8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression as Level;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(s: &str) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Level::default());
        e.write_all(s.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gzip_frames_inflate() {
        let mut buf = Vec::new();
        let data = gz(r#"{"ping":1}"#);
        let t = decode(
            RawFrame::Binary(&data),
            Compression::Gzip,
            1 << 20,
            &mut buf,
        )
        .unwrap();
        assert_eq!(t, r#"{"ping":1}"#);
        let mut buf = Vec::new();
        let t = decode(
            RawFrame::Binary(&data),
            Compression::Auto,
            1 << 20,
            &mut buf,
        )
        .unwrap();
        assert_eq!(t, r#"{"ping":1}"#);
    }

    #[test]
    fn bad_and_oversized_input_is_refused() {
        let mut buf = Vec::new();
        assert!(matches!(
            decode(
                RawFrame::Binary(b"\x1f\x8bnot gzip"),
                Compression::Gzip,
                100,
                &mut buf
            ),
            Err(MapError::Decode(_))
        ));
        let bomb = gz(&"a".repeat(10_000));
        assert!(matches!(
            decode(RawFrame::Binary(&bomb), Compression::Gzip, 100, &mut buf),
            Err(MapError::TooLarge { .. })
        ));
        assert!(matches!(
            decode(
                RawFrame::Binary(&[0xff, 0xfe]),
                Compression::None,
                100,
                &mut buf
            ),
            Err(MapError::Utf8)
        ));
    }
}
