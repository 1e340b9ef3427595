//! `[rest]` and `[[reference]]` of a venue file: the REST budget and the
//! reference-data requests, raw and compiled.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::compile::Compiler;
use super::raw::RawMarket;
use crate::config::{Dur, Jq};
use crate::engine::venue::{ReferenceRequest, RestRules};

/// Pages fetched per reference request when `max_pages` is not given.
const DEFAULT_MAX_PAGES: usize = 50;

/// `[rest]`: the venue's REST budget, shared by every request the relay
/// makes to it (connection bootstrap, book snapshots, checksum scales,
/// reference data).
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRest {
    /// At most `requests` per `per`, e.g. `{ requests = 10, per = "1s" }`
    /// (the default). Requests beyond it wait.
    pub budget: Option<RawBudget>,
    /// After an HTTP 429 or 418 without a readable `Retry-After`, no
    /// request to the venue for this long (default `5s`). With a
    /// `Retry-After` (seconds or an HTTP date), that wait applies.
    pub throttled_wait: Option<Dur>,
}

/// `budget = { requests = 10, per = "1s" }`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    /// Requests allowed per window (at least 1).
    #[schemars(with = "u32")]
    pub requests: Spanned<u32>,
    /// The window (above 0).
    #[schemars(with = "Dur")]
    pub per: Spanned<Dur>,
}

/// `[[reference]]`: a REST request listing the venue's instruments, and
/// the jq mapping of its response to canonical instrument records.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReference {
    /// A name, unique in the file (logs, `/health`, fixture cases).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// `GET` (default) or `POST`.
    #[serde(default = "get")]
    pub method: String,
    /// The URL (`https://…`), without the query.
    pub url: String,
    /// Query parameters of the first page.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// The request body (JSON text, POST).
    pub body: Option<String>,
    /// The market the listed instruments trade on (venues with
    /// `[markets]`); subscriptions made from them use it.
    pub market: Option<String>,
    /// jq on the response body giving one object per instrument, with the
    /// keys `symbol`, `kind`, `base`, `quote` (required), `normalized`,
    /// `settle`, `tick_size`, `lot_size`, `contract_size`, `multiplier`,
    /// `expiry`, `strike`, `option_type`, `status` (see
    /// docs/venue-format.md).
    pub records: Jq,
    /// jq on the response body giving the query parameters of the next page
    /// (an object of strings or numbers), or nothing / `null` after the
    /// last page.
    pub next_page: Option<Jq>,
    /// Most pages per refresh (default 50).
    pub max_pages: Option<usize>,
}

fn get() -> String {
    "GET".to_owned()
}

impl Compiler<'_> {
    /// Compile `[rest]`.
    pub(super) fn rest(&mut self, r: RawRest) -> RestRules {
        let mut rules = RestRules::default();
        if let Some(b) = r.budget {
            if *b.requests.get_ref() == 0 {
                self.p.at(
                    Some(b.requests.span()),
                    "rest.budget.requests",
                    "must be at least 1",
                );
            }
            if b.per.get_ref().0.is_zero() {
                self.p
                    .at(Some(b.per.span()), "rest.budget.per", "must be above 0");
            }
            rules.requests = *b.requests.get_ref();
            rules.per = b.per.get_ref().0;
        }
        if let Some(w) = r.throttled_wait {
            rules.throttled_wait = w.0;
        }
        rules
    }

    /// Compile `[[reference]]`.
    pub(super) fn reference(
        &mut self,
        raw: Vec<Option<RawReference>>,
        markets: &BTreeMap<String, RawMarket>,
    ) -> Vec<ReferenceRequest> {
        let mut out: Vec<ReferenceRequest> = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in raw.into_iter().enumerate() {
            let Some(r) = r else { continue };
            let at = format!("reference[{i}]");
            let name = r.name.get_ref().clone();
            if name.is_empty() || !names.insert(name.clone()) {
                self.p.at(
                    Some(r.name.span()),
                    format!("{at}.name"),
                    format!("`{name}`: names must be non-empty and unique"),
                );
            }
            if !matches!(r.method.as_str(), "GET" | "POST") {
                self.p.at(
                    None,
                    format!("{at}.method"),
                    format!("`{}` is not GET or POST", r.method),
                );
            }
            if !(r.url.starts_with("https://") || r.url.starts_with("http://")) {
                self.p.at(
                    None,
                    format!("{at}.url"),
                    format!("`{}` is not an http(s):// URL", r.url),
                );
            }
            if let Some(m) = &r.market
                && !markets.contains_key(m)
            {
                self.p.at(
                    None,
                    format!("{at}.market"),
                    format!("unknown market `{m}` (declare it under [markets])"),
                );
            }
            if r.max_pages == Some(0) {
                self.p
                    .at(None, format!("{at}.max_pages"), "must be at least 1");
            }
            let records = self.jq(&r.records, &format!("{at}.records"));
            let next_page = self.opt_jq(r.next_page.as_ref(), &format!("{at}.next_page"));
            let Some(records) = records else { continue };
            out.push(ReferenceRequest {
                name,
                method: r.method,
                url: r.url,
                query: r.query,
                body: r.body,
                market: r.market,
                records,
                next_page,
                max_pages: r.max_pages.unwrap_or(DEFAULT_MAX_PAGES).max(1),
            });
        }
        out
    }
}
