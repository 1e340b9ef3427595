//! The publisher's cost per event before the client takes it: building the
//! four headers afresh (`headers`) against cloning a per-venue template and
//! setting the id (`HeaderTemplate`).

use std::sync::Arc;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};

use mdrelay::application::pipeline::Outgoing;
use mdrelay::application::publisher::{HeaderTemplate, headers};
use mdrelay::domain::DataType;

fn event() -> Outgoing {
    Outgoing {
        subject: "market.binance-spot.btc-usdt.ticker".into(),
        id: "binance-spot:ticker:BTCUSDT:48512370119".into(),
        venue: Arc::from("binance-spot"),
        data_type: DataType::Ticker,
        payload: bytes::Bytes::from_static(b"{}"),
        received: Instant::now(),
    }
}

fn bench(c: &mut Criterion) {
    let m = event();
    let mut g = c.benchmark_group("publish_headers");
    g.bench_function("fresh", |b| {
        b.iter(|| std::hint::black_box(headers(&m, "application/json")))
    });
    let t = HeaderTemplate::new(&m.venue, m.data_type, "application/json");
    assert_eq!(
        format!("{:?}", sorted(&t.with_id(&m.id))),
        format!("{:?}", sorted(&headers(&m, "application/json")))
    );
    g.bench_function("template", |b| {
        b.iter(|| std::hint::black_box(t.with_id(&m.id)))
    });
    g.finish();
}

fn sorted(h: &async_nats::HeaderMap) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = h
        .iter()
        .map(|(k, vs)| {
            (
                k.to_string(),
                vs.last().map(|v| v.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

criterion_group!(benches, bench);
criterion_main!(benches);
