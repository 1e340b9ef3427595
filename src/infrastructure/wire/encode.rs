//! The NATS client protocol's publish operations, written straight into the
//! connection's output buffer: `HPUB` for a message with headers, `PUB` for
//! one without. The header block is the caller's pre-rendered part (the
//! version line and every header that does not change between messages, up
//! to the name of the last one) plus the last header's value.

use bytes::{BufMut, BytesMut};

/// Why a message cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message is larger than the server accepts (its `max_payload`).
    #[error("message of {size} bytes exceeds the server's max_payload of {max}")]
    TooLarge {
        /// Header block plus payload.
        size: usize,
        /// The server's limit.
        max: usize,
    },
    /// A header value or a subject holds a line break or a space, which the
    /// protocol cannot carry.
    #[error("{0} holds a character the NATS protocol cannot carry")]
    BadToken(&'static str),
}

/// Append an integer in decimal.
fn put_num(out: &mut BytesMut, n: usize) {
    let mut b = itoa::Buffer::new();
    out.put_slice(b.format(n).as_bytes());
}

/// Whether `s` can stand as one protocol token (a subject, a reply).
fn token_ok(s: &[u8]) -> bool {
    !s.is_empty() && !s.iter().any(|&c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Check a message's subject and reply (empty: none), and its size against
/// the server's limit.
fn check(subject: &[u8], reply: &[u8], size: usize, max: usize) -> Result<(), EncodeError> {
    if !token_ok(subject) {
        return Err(EncodeError::BadToken("the subject"));
    }
    if !reply.is_empty() && !token_ok(reply) {
        return Err(EncodeError::BadToken("the reply subject"));
    }
    if size > max {
        return Err(EncodeError::TooLarge { size, max });
    }
    Ok(())
}

/// Append `HPUB <subject> <reply> <hlen> <tlen>\r\n<head><last>\r\n\r\n<payload>\r\n`.
/// `head` ends with the last header's name and `": "`; `last` is its value.
/// An empty `reply` is left out (a publish nobody answers).
pub(super) fn hpub(
    out: &mut BytesMut,
    subject: &[u8],
    reply: &[u8],
    head: &[u8],
    last: &[u8],
    payload: &[u8],
    max_payload: usize,
) -> Result<(), EncodeError> {
    if last.iter().any(|&c| c == b'\r' || c == b'\n') {
        return Err(EncodeError::BadToken("a header value"));
    }
    let hlen = head.len() + last.len() + 4;
    let total = hlen + payload.len();
    check(subject, reply, total, max_payload)?;
    out.reserve(subject.len() + reply.len() + 32 + total);
    out.put_slice(b"HPUB ");
    put_subjects(out, subject, reply);
    put_num(out, hlen);
    out.put_u8(b' ');
    put_num(out, total);
    out.put_slice(b"\r\n");
    out.put_slice(head);
    out.put_slice(last);
    out.put_slice(b"\r\n\r\n");
    out.put_slice(payload);
    out.put_slice(b"\r\n");
    Ok(())
}

/// Append `<subject> <reply> ` (or `<subject> ` without a reply).
fn put_subjects(out: &mut BytesMut, subject: &[u8], reply: &[u8]) {
    out.put_slice(subject);
    out.put_u8(b' ');
    if !reply.is_empty() {
        out.put_slice(reply);
        out.put_u8(b' ');
    }
}

/// Append `PUB <subject> <reply> <len>\r\n<payload>\r\n`.
pub(super) fn publish(
    out: &mut BytesMut,
    subject: &[u8],
    reply: &[u8],
    payload: &[u8],
    max_payload: usize,
) -> Result<(), EncodeError> {
    check(subject, reply, payload.len(), max_payload)?;
    out.reserve(subject.len() + reply.len() + 24 + payload.len());
    out.put_slice(b"PUB ");
    put_subjects(out, subject, reply);
    put_num(out, payload.len());
    out.put_slice(b"\r\n");
    out.put_slice(payload);
    out.put_slice(b"\r\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpub_counts_the_header_block_and_the_whole_message() {
        let mut out = BytesMut::new();
        let head = b"NATS/1.0\r\nA: b\r\nNats-Msg-Id: ";
        hpub(&mut out, b"m.x", b"_I.7", head, b"id1", b"{}", 1024).unwrap();
        // Header block: head (29) + "id1" + "\r\n\r\n" = 36; total 38.
        assert_eq!(
            &out[..],
            b"HPUB m.x _I.7 36 38\r\nNATS/1.0\r\nA: b\r\nNats-Msg-Id: id1\r\n\r\n{}\r\n"
        );
    }

    #[test]
    fn pub_without_headers_may_carry_an_empty_payload() {
        let mut out = BytesMut::new();
        publish(&mut out, b"m.x", b"_I.b.3.$FI", b"", 1024).unwrap();
        assert_eq!(&out[..], b"PUB m.x _I.b.3.$FI 0\r\n\r\n");
    }

    #[test]
    fn what_the_protocol_cannot_carry_is_refused_and_nothing_is_written() {
        let mut out = BytesMut::new();
        let head = b"NATS/1.0\r\nNats-Msg-Id: ";
        assert_eq!(
            hpub(&mut out, b"m.x", b"r", head, b"a\r\nb", b"", 1024),
            Err(EncodeError::BadToken("a header value"))
        );
        assert_eq!(
            hpub(&mut out, b"m x", b"r", head, b"a", b"", 1024),
            Err(EncodeError::BadToken("the subject"))
        );
        assert_eq!(
            hpub(&mut out, b"m.x", b"r", head, b"a", &[0u8; 100], 64),
            Err(EncodeError::TooLarge { size: 128, max: 64 })
        );
        assert_eq!(
            publish(&mut out, b"m.x", b"r\n", b"", 64),
            Err(EncodeError::BadToken("the reply subject"))
        );
        assert!(out.is_empty());
    }

    #[test]
    fn an_empty_reply_is_left_out() {
        let mut out = BytesMut::new();
        hpub(&mut out, b"m.x", b"", b"NATS/1.0\r\nI: ", b"1", b"{}", 64).unwrap();
        publish(&mut out, b"m.y", b"", b"ab", 64).unwrap();
        assert_eq!(
            &out[..],
            b"HPUB m.x 18 20\r\nNATS/1.0\r\nI: 1\r\n\r\n{}\r\nPUB m.y 2\r\nab\r\n"
        );
    }
}
