//! The fingerprint of a venue's connection settings: what, when it changes
//! on reload, needs the connections replaced (see `application::reload`).
use std::collections::BTreeMap;
use std::fmt::Write as _;

use xxhash_rust::xxh3::xxh3_64;

use crate::domain::DataType;
use crate::engine::expr::Expr;
use crate::engine::venue::{Channel, Connection, Heartbeat, Market, Subscribe};

pub(super) fn fingerprint(
    c: &Connection,
    markets: &BTreeMap<String, Market>,
    s: &Subscribe,
    channels: &BTreeMap<DataType, Channel>,
    h: &Heartbeat,
) -> u64 {
    let mut text = String::new();
    let src = |e: &Option<Expr>| {
        e.as_ref()
            .map(|e| e.source().to_owned())
            .unwrap_or_default()
    };
    let _ = write!(
        text,
        "{:?}|{}|{:?}|{:?}|{:?}|{}|",
        c.url,
        src(&c.url_query),
        c.max_streams,
        c.max_messages_per_second,
        c.max_lifetime,
        c.max_frame_bytes
    );
    if let Some(b) = &c.bootstrap {
        let _ = write!(
            text,
            "{}|{}|{:?}|{}|",
            b.method,
            b.url,
            b.body,
            b.ws_url.source()
        );
    }
    for (k, m) in markets {
        let _ = write!(text, "{k}={}:{:?}|", m.url, m.max_items_per_message);
    }
    let _ = write!(
        text,
        "{:?}|{:?}|{}|{}|",
        s.batch,
        s.max_items_per_message,
        src(&s.message),
        src(&s.unsubscribe)
    );
    for e in &s.on_connect {
        let _ = write!(text, "{}|", e.source());
    }
    for (t, ch) in channels {
        let _ = write!(text, "{t}={}:{}:{:?}|", ch.name, ch.params, ch.markets);
    }
    let _ = write!(
        text,
        "{:?}|{}|{}|{:?}",
        h.interval,
        src(&h.message),
        h.websocket_ping,
        h.silence_timeout
    );
    xxh3_64(text.as_bytes())
}
