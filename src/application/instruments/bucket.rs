//! Reference data on the bus: a JetStream key-value bucket holding each
//! instrument's canonical record under `<venue>.<symbol>` (the venue
//! symbol, with characters a key cannot hold written `=XX`). A record is
//! put when it changes; an instrument the venue no longer lists is put
//! once more with status `delisted`.

use std::collections::HashMap;

use async_nats::jetstream;

use crate::domain::{InstrumentRecord, TradingStatus};

/// The bucket's name.
pub const BUCKET: &str = "MARKET_INSTRUMENTS";

/// The key of a record: `<venue>.<escaped symbol>`, plus `.<market>` for
/// venues with markets.
pub fn key(r: &InstrumentRecord) -> String {
    let mut k = format!("{}.{}", r.venue, escape(&r.symbol));
    if let Some(m) = &r.market {
        k.push('.');
        k.push_str(&escape(m));
    }
    k
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// Open (or create) the bucket.
pub async fn open(js: &jetstream::Context) -> Result<jetstream::kv::Store, String> {
    if let Ok(s) = js.get_key_value(BUCKET).await {
        return Ok(s);
    }
    js.create_key_value(jetstream::kv::Config {
        bucket: BUCKET.to_owned(),
        description: "mdrelay: instrument reference data, one record per venue instrument".into(),
        history: 1,
        ..Default::default()
    })
    .await
    .map_err(|e| e.to_string())
}

/// What a venue's bucket entries last held, to put only changes.
#[derive(Debug, Default)]
pub struct Published(HashMap<String, HashMap<String, String>>);

impl Published {
    /// The puts that bring `venue`'s entries to `records`: changed and new
    /// records, and gone ones as `delisted`. Marks them as published.
    pub fn changes(&mut self, venue: &str, records: &[InstrumentRecord]) -> Vec<(String, String)> {
        let before = self.0.entry(venue.to_owned()).or_default();
        let mut now: HashMap<String, String> = HashMap::with_capacity(records.len());
        let mut puts = Vec::new();
        for r in records {
            let (k, v) = (key(r), r.to_json());
            if before.get(&k) != Some(&v) {
                puts.push((k.clone(), v.clone()));
            }
            now.insert(k, v);
        }
        for (k, v) in before.iter() {
            if !now.contains_key(k)
                && let Ok(r) = serde_json::from_str::<InstrumentRecord>(v)
            {
                if r.status == TradingStatus::Delisted {
                    continue;
                }
                let gone = r.with_status(TradingStatus::Delisted);
                let json = gone.to_json();
                puts.push((k.clone(), json.clone()));
                now.insert(k.clone(), json);
            }
        }
        *before = now;
        puts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hold_only_allowed_characters() {
        let mut r: InstrumentRecord = serde_json::from_str(
            r#"{"venue":"bitfinex","symbol":"AAVE:USD","normalized":"AAVE/USD","market":null,"kind":"spot","base":"AAVE","quote":"USD","settle":null,"tick_size":null,"lot_size":null,"contract_size":null,"multiplier":null,"expiry":null,"strike":null,"option_type":null,"status":"trading"}"#,
        )
        .unwrap();
        assert_eq!(key(&r), "bitfinex.AAVE=3AUSD");
        r.symbol = "BTC.D".into();
        assert_eq!(key(&r), "bitfinex.BTC=2ED");
        let mut p = Published::default();
        assert_eq!(p.changes("bitfinex", std::slice::from_ref(&r)).len(), 1);
        assert!(p.changes("bitfinex", std::slice::from_ref(&r)).is_empty());
        let gone = p.changes("bitfinex", &[]);
        assert_eq!(gone.len(), 1);
        assert!(gone[0].1.contains("\"delisted\""));
        assert!(p.changes("bitfinex", &[]).is_empty());
    }
}
