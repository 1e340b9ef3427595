//! `mdrelay instruments VENUE [FILTER]`: a venue's instrument reference
//! data, filtered like the relay config's `select`: from the bus (the
//! relay's `MARKET_INSTRUMENTS` bucket, the default), from the venue's
//! REST API (`--fetch`), or offline from a saved response (`--response`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;

use super::bus::BusArgs;
use super::venue_arg::venue_file;
use crate::application::instruments::{bucket, fetch_all, map_page};
use crate::application::metrics::Metrics;
use crate::application::venue_rest::{VenueRest, budget_settings};
use crate::config::relay::select::{accepts, compile_select};
use crate::config::venue::load_venue;
use crate::domain::InstrumentRecord;
use crate::engine::venue::Venue;
use crate::infrastructure::rest::{Budget, Rest};

/// Arguments of `mdrelay instruments`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The venue: an id (`okx`) or a venue file (`venues/okx.toml`).
    pub venue: String,
    /// A jq predicate over the canonical record, as `select` in the relay
    /// config, e.g. `kind == "perpetual" and quote == "USDT"`.
    pub filter: Option<String>,
    /// Map this saved response body instead (offline), with the request
    /// `--request` (needed when the venue declares several).
    #[arg(long, value_name = "FILE")]
    pub response: Option<PathBuf>,
    /// The `[[reference]]` request `--response` answers.
    #[arg(long, value_name = "NAME")]
    pub request: Option<String>,
    /// Fetch from the venue's REST API now (every request, every page,
    /// within the venue's `[rest]` budget) instead of reading the bus.
    #[arg(long, conflicts_with = "response")]
    pub fetch: bool,
    /// Print canonical JSON records, one per line.
    #[arg(long)]
    pub json: bool,
    /// Directory of venue files.
    #[arg(long, default_value = "venues")]
    pub venues: PathBuf,
    /// The NATS connection (reading the bus).
    #[command(flatten)]
    pub bus: BusArgs,
}

/// Run `mdrelay instruments`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let file = venue_file(&args.venue, &args.venues)?;
    let venue = load_venue(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
    if venue.reference.is_empty() {
        bail!(
            "venue `{}` declares no reference data (`[[reference]]` in {})",
            venue.id,
            file.display()
        );
    }
    let filter = match &args.filter {
        Some(text) => Some(compile_select(text).map_err(|errs| {
            let msgs: Vec<String> = errs
                .iter()
                .map(|e| format!("at {}: {}", e.offset, e.message))
                .collect();
            anyhow::anyhow!("filter does not compile: {}", msgs.join("; "))
        })?),
        None => None,
    };
    let records = if let Some(path) = &args.response {
        offline(&venue, path, args.request.as_deref())?
    } else {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        if args.fetch {
            rt.block_on(fetch(&venue))?
        } else {
            rt.block_on(from_bus(&venue, &args.bus))?
        }
    };
    let listed = records.len();
    let mut shown = 0;
    let mut out = String::new();
    for r in &records {
        let keep = match &filter {
            None => true,
            Some(f) => accepts(f, r).map_err(|e| anyhow::anyhow!("filter on {}: {e}", r.symbol))?,
        };
        if keep {
            shown += 1;
            out.push_str(&if args.json { r.to_json() } else { line(r) });
            out.push('\n');
        }
    }
    if shown == 0 {
        eprintln!("no instrument of {listed} listed matches");
        return Ok(ExitCode::FAILURE);
    }
    if !args.json {
        let header = format!(
            "{:<28} {:<30} {:<9} {:<8} {:<8} {:<8} {:>14} {:>14} {:<8}\n",
            "SYMBOL", "NORMALIZED", "KIND", "BASE", "QUOTE", "SETTLE", "TICK", "LOT", "STATUS"
        );
        out.insert_str(0, &header);
        out.push_str(&format!("{shown} of {listed} instrument(s)\n"));
    }
    // A closed pipe (`| head`) is not an error.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
    Ok(ExitCode::SUCCESS)
}

fn line(r: &InstrumentRecord) -> String {
    let d = |v: &Option<rust_decimal::Decimal>| v.map_or_else(|| "-".to_owned(), |d| d.to_string());
    format!(
        "{:<28} {:<30} {:<9} {:<8} {:<8} {:<8} {:>14} {:>14} {:<8}",
        r.symbol,
        r.normalized,
        r.kind.as_str(),
        r.base,
        r.quote,
        r.settle.as_deref().unwrap_or("-"),
        d(&r.tick_size),
        d(&r.lot_size),
        r.status.as_str()
    )
}

fn offline(
    venue: &Venue,
    path: &PathBuf,
    request: Option<&str>,
) -> anyhow::Result<Vec<InstrumentRecord>> {
    let req = match request {
        Some(name) => venue
            .reference
            .iter()
            .find(|r| r.name == name)
            .with_context(|| {
                let names: Vec<&str> = venue.reference.iter().map(|r| r.name.as_str()).collect();
                format!(
                    "unknown request `{name}`; `{}` declares: {}",
                    venue.id,
                    names.join(", ")
                )
            })?,
        None if venue.reference.len() == 1 => &venue.reference[0],
        None => {
            let names: Vec<&str> = venue.reference.iter().map(|r| r.name.as_str()).collect();
            bail!(
                "say which request the response answers: --request {}",
                names.join("|")
            )
        }
    };
    let body = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let page =
        map_page(venue, req, &body).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if let Some(next) = &page.next {
        eprintln!("(the response names a next page: {next:?})");
    }
    Ok(page.records)
}

async fn fetch(venue: &Venue) -> anyhow::Result<Vec<InstrumentRecord>> {
    let rest = VenueRest::new(
        Rest::new(Duration::from_secs(20)),
        Arc::new(Budget::new(budget_settings(&venue.rest))),
        venue.id.clone(),
        Arc::new(Metrics::new()),
    );
    fetch_all(&rest, venue, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

async fn from_bus(venue: &Venue, bus: &BusArgs) -> anyhow::Result<Vec<InstrumentRecord>> {
    let client = bus.connect("mdrelay-instruments").await?;
    let js = async_nats::jetstream::new(client);
    let kv = js.get_key_value(bucket::BUCKET).await.map_err(|e| {
        anyhow::anyhow!(
            "no bucket {} on this server ({e}): a relay publishes it for venues with `select` subscriptions; or use --fetch / --response",
            bucket::BUCKET
        )
    })?;
    let prefix = format!("{}.", venue.id);
    let mut keys = kv
        .keys()
        .await
        .map_err(|e| anyhow::anyhow!("listing keys: {e}"))?;
    let mut records = Vec::new();
    while let Some(k) = keys.next().await {
        let k = k.map_err(|e| anyhow::anyhow!("listing keys: {e}"))?;
        if !k.starts_with(&prefix) {
            continue;
        }
        if let Some(v) = kv.get(&k).await.map_err(|e| anyhow::anyhow!("{k}: {e}"))? {
            records
                .push(serde_json::from_slice::<InstrumentRecord>(&v).with_context(|| k.clone())?);
        }
    }
    records.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    Ok(records)
}
