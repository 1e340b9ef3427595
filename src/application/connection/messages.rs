//! Where the connection goes and what it sends: the URL (from the venue
//! file, or a bootstrap request's answer), client pings.

use std::time::Duration;

use super::{Connection, with_origin};
use crate::application::subscribe::{ConnPlan, connection_url};

use crate::engine::book::Scales;
use crate::engine::expr::Expr;
use crate::engine::expr::{Scope, V, Var};
use crate::engine::json::OwnedDoc;
use crate::engine::venue::{Bootstrap, ScaleSource, Venue};

/// Extract the WebSocket URL (and ping interval) from a bootstrap response.
fn bootstrap_result(b: &Bootstrap, body: String) -> Result<(String, Option<Duration>), String> {
    let doc = OwnedDoc::parse(body).map_err(|e| format!("bootstrap response: {e}"))?;
    let mut scope = Scope::new();
    let connect_id = format!("{:016x}", rand_u64());
    scope.set(Var::ConnectId, V::Str(connect_id.as_str().into()));
    let root = V::from_doc(doc.root());
    let url = match b.ws_url.first(&root, &scope) {
        Ok(Some(V::Str(u))) => u.into_owned(),
        other => return Err(format!("bootstrap ws_url gave {other:?}")),
    };
    let ping = match &b.ping_interval_ms {
        Some(e) => match e.first(&root, &scope) {
            Ok(Some(V::Num(n))) => n.parse::<u64>().ok().map(Duration::from_millis),
            _ => None,
        },
        None => None,
    };
    Ok((url, ping))
}

/// A per-instrument REST URL (`[book.snapshot] url`, `[book.checksum.scales] url`).
pub(super) fn instrument_url(
    venue: &Venue,
    expr: &Expr,
    instrument: &str,
    market: Option<&str>,
) -> Result<String, String> {
    let mut scope = Scope::new();
    scope
        .set(Var::Instrument, V::Str(instrument.into()))
        .set(Var::Venue, V::Str(venue.id.as_ref().into()));
    if let Some(m) = market {
        scope.set(Var::Market, V::Str(m.into()));
    }
    match expr.first(&V::Null, &scope) {
        Ok(Some(V::Str(u))) => Ok(u.into_owned()),
        other => Err(format!("the URL expression gave {other:?}")),
    }
}

/// The decimal places of an instrument's prices and quantities, from its
/// `[book.checksum.scales]` response.
pub(super) fn scales_result(
    source: &ScaleSource,
    body: String,
    instrument: &str,
    market: Option<&str>,
) -> Result<Scales, String> {
    let doc = OwnedDoc::parse(body).map_err(|e| format!("scales response: {e}"))?;
    let mut scope = Scope::new();
    scope.set(Var::Instrument, V::Str(instrument.into()));
    if let Some(m) = market {
        scope.set(Var::Market, V::Str(m.into()));
    }
    let root = V::from_doc(doc.root());
    let places = |e: &Expr, what: &str| -> Result<u32, String> {
        match e.first(&root, &scope) {
            // A number (or numeric string); rust_decimal holds at most 28
            // decimal places.
            Ok(Some(v)) => match v.to_text().parse::<u32>() {
                Ok(p) if p <= 28 => Ok(p),
                _ => Err(format!(
                    "{what} gave {}, not 0..=28 decimal places",
                    v.to_json()
                )),
            },
            other => Err(format!("{what} gave {other:?}")),
        }
    };
    Ok(Scales {
        price: places(&source.price, "scales.price")?,
        quantity: places(&source.quantity, "scales.quantity")?,
    })
}

/// A random 64-bit number (connection ids); no cryptographic quality needed.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// The URL to connect to (and a ping interval a bootstrap answer sets):
/// the venue's bootstrap request when it has one and no URL is forced,
/// else the URL its file gives for the connection's instruments.
pub(super) async fn resolve_url(
    conn: &Connection,
    plan: &ConnPlan,
    venue: &Venue,
) -> Result<(String, Option<Duration>), String> {
    if let (Some(b), None) = (&venue.connection.bootstrap, &conn.url_override) {
        let url = match &conn.rest_url {
            Some(origin) => with_origin(&b.url, origin),
            None => b.url.clone(),
        };
        let body = conn
            .rest
            .request(
                crate::application::metrics::RestKind::Bootstrap,
                &b.method,
                &url,
                b.body.as_deref(),
            )
            .await
            .map_err(|e| format!("bootstrap request: {e}"))?;
        return bootstrap_result(b, body);
    }
    let url = connection_url(
        venue,
        conn.url_override.as_deref(),
        plan.market.as_deref(),
        &plan.items,
    )?;
    Ok((url, None))
}
