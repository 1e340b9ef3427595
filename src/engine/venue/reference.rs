//! Compiled `[rest]` and `[[reference]]` sections: the venue's REST budget
//! and its reference-data requests.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::engine::expr::Expr;

/// `[rest]`: how often the relay may call the venue's REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestRules {
    /// Most requests per `per` (all kinds together).
    pub requests: u32,
    /// The budget's window.
    pub per: Duration,
    /// The pause after a 429/418 answer with no readable `Retry-After`.
    pub throttled_wait: Duration,
}

impl Default for RestRules {
    fn default() -> Self {
        RestRules {
            requests: 10,
            per: Duration::from_secs(1),
            throttled_wait: Duration::from_secs(5),
        }
    }
}

/// One `[[reference]]` request: a REST call listing instruments, paged,
/// and the mapping of its response to canonical instrument records.
#[derive(Debug, Clone)]
pub struct ReferenceRequest {
    /// Its name (unique in the file), for logs, fixtures and health.
    pub name: String,
    /// `GET` or `POST`.
    pub method: String,
    /// The URL without the query.
    pub url: String,
    /// Query parameters of the first page.
    pub query: BTreeMap<String, String>,
    /// The request body (POST).
    pub body: Option<String>,
    /// The market its instruments trade on (multi-market venues).
    pub market: Option<String>,
    /// jq on the response: one object per instrument (see docs).
    pub records: Expr,
    /// jq on the response: the query parameters to add for the next page
    /// (an object), or nothing / `null` on the last page.
    pub next_page: Option<Expr>,
    /// Most pages fetched per refresh.
    pub max_pages: usize,
}

impl ReferenceRequest {
    /// The URL of a page: the base URL with `query` and `extra` (which wins).
    pub fn page_url(&self, extra: &BTreeMap<String, String>) -> String {
        let mut params = self.query.clone();
        params.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        if params.is_empty() {
            return self.url.clone();
        }
        let q: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}{}", self.url, q.join("&"))
    }
}

/// Percent-encode a query component: RFC 3986 unreserved characters and
/// `%` are kept (venues hand out page cursors already encoded, to be sent
/// back as they are).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'%') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_urls_carry_the_query_and_the_cursor() {
        let r = ReferenceRequest {
            name: "linear".into(),
            method: "GET".into(),
            url: "https://h/v5/market/instruments-info".into(),
            query: [("category".to_owned(), "linear".to_owned())].into(),
            body: None,
            market: None,
            records: Expr::compile(".").unwrap(),
            next_page: None,
            max_pages: 10,
        };
        assert_eq!(
            r.page_url(&BTreeMap::new()),
            "https://h/v5/market/instruments-info?category=linear"
        );
        let next = [("cursor".to_owned(), "a=b&c d".to_owned())].into();
        assert_eq!(
            r.page_url(&next),
            "https://h/v5/market/instruments-info?category=linear&cursor=a%3Db%26c%20d"
        );
        // A cursor the venue encoded goes back as it came.
        let next = [("cursor".to_owned(), "first%3DBIOUSDT".to_owned())].into();
        assert!(r.page_url(&next).ends_with("&cursor=first%3DBIOUSDT"));
    }
}
