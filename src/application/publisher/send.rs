//! How a publisher hands a message to NATS: the direct publish connection
//! for first attempts while it is up, the async-nats client for resends and
//! whenever it is down; a fast-ingest batch on one connection from its
//! first message to its end.

use std::time::Instant;

use super::Publisher;
use crate::application::acks::{Failure, Flight};
use crate::infrastructure::wire::{Wire, WireError};

/// A direct-writer failure as a message's failure: a connection that is
/// down is transient; a message the protocol cannot carry (too large for the
/// server, a line break in its id) is refused, retried on `retry_delays`,
/// then dropped as `publish_failed`.
fn wire_failure(e: WireError) -> Failure {
    match e {
        WireError::Disconnected => Failure::Transient(e.to_string()),
        WireError::Encode(_) => Failure::Refused(e.to_string()),
    }
}

impl Publisher {
    /// Whether a message sent now can be acknowledged: the client, which
    /// receives the acks (and sends whatever the direct writer does not),
    /// is connected.
    pub(super) fn connected(&self) -> bool {
        self.s.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Whether there is a direct writer and it is up.
    fn wire_up(&self) -> bool {
        self.s.wire.as_ref().is_some_and(Wire::connected)
    }

    /// Whether a batch may open: batches go out only on the direct writer
    /// when there is one (a batch's messages and its end must share a
    /// connection), so not while it is down.
    pub(super) fn batch_writer_ready(&self) -> bool {
        self.s.wire.as_ref().is_none_or(Wire::connected)
    }

    /// Publish a message's payload with its headers (the venue's template
    /// with the message id) and `reply` as the ack subject. A first attempt
    /// goes on the direct writer while it is up; a resend, or any message
    /// while it is down, goes through the client, whose connection also
    /// hears JetStream's "no responders" (a subject without a stream), which
    /// the direct connection cannot (the server only answers it to the
    /// connection holding the reply's subscription).
    async fn publish(&mut self, f: &Flight, reply: String) -> Result<(), Failure> {
        if f.attempt == 0 && f.transient == 0 && self.wire_up() {
            return self.write_direct(f, &reply);
        }
        let headers = self.handles(&f.m).headers.with_id(&f.m.id);
        self.s
            .client
            .publish_with_reply_and_headers(
                f.m.subject.clone(),
                reply,
                headers,
                f.m.payload.clone(),
            )
            .await
            .map_err(|e| Failure::Transient(e.to_string()))
    }

    /// Encode a message onto the direct writer (there is one: the caller
    /// checked).
    fn write_direct(&mut self, f: &Flight, reply: &str) -> Result<(), Failure> {
        let i = self.venue_index(&f.m);
        // Disjoint fields: the writer and the venue's header block, no
        // handle cloned per event.
        let Some(wire) = &self.s.wire else {
            return Err(wire_failure(WireError::Disconnected));
        };
        wire.hpub(
            f.m.subject.as_bytes(),
            reply.as_bytes(),
            self.venues[i].headers.block(),
            f.m.id.as_bytes(),
            &f.m.payload,
        )
        .map_err(wire_failure)?;
        self.direct_writes.inc();
        Ok(())
    }

    /// Hand a message to the client with its own reply subject.
    pub(super) async fn send(&mut self, mut f: Flight) {
        let (n, reply) = self.inflight.reply();
        match self.publish(&f, reply).await {
            Ok(()) => {
                f.sent = true;
                self.inflight.insert(n, f, Instant::now());
            }
            Err(why) => self.finish(f, Err(why)),
        }
    }

    /// Hand a message to the client in the open fast-ingest batch.
    pub(super) async fn send_batched(&mut self, mut f: Flight) {
        let Some(b) = &mut self.batcher else {
            return self.send(f).await;
        };
        let now = Instant::now();
        let reply = b.next_reply(&f.m.subject, now);
        self.last_batched = now;
        // A batch stays on one connection: the direct writer when there is
        // one (if it went down, the batch ends here and what it did not
        // confirm is sent again through the client).
        let sent = if self.s.wire.is_some() {
            self.write_direct(&f, &reply)
        } else {
            self.publish(&f, reply).await
        };
        match sent {
            Ok(()) => {
                f.sent = true;
                if let Some(b) = &mut self.batcher {
                    b.sent(f);
                }
            }
            Err(why) => {
                self.finish(f, Err(why));
                self.expire_batch(false);
            }
        }
    }

    /// End the open batch: its final ack confirms what it stored.
    pub(super) async fn end_batch(&mut self) {
        let Some((subject, reply)) = self.batcher.as_mut().and_then(|b| b.end(Instant::now()))
        else {
            return;
        };
        let sent = match &self.s.wire {
            // On the same connection as the batch's messages: it must not
            // overtake them.
            Some(wire) => wire
                .publish(subject.as_bytes(), reply.as_bytes(), b"")
                .is_ok(),
            None => self
                .s
                .client
                .publish_with_reply(subject, reply, bytes::Bytes::new())
                .await
                .is_ok(),
        };
        if !sent {
            self.expire_batch(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infrastructure::wire::EncodeError;

    #[test]
    fn a_connection_down_is_transient_and_an_unwritable_message_refused() {
        assert!(matches!(
            wire_failure(WireError::Disconnected),
            Failure::Transient(_)
        ));
        let big = WireError::Encode(EncodeError::TooLarge { size: 9, max: 8 });
        match wire_failure(big) {
            Failure::Refused(why) => assert!(why.contains("max_payload"), "{why}"),
            Failure::Transient(why) => panic!("transient: {why}"),
        }
    }
}
