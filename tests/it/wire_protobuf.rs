//! The direct protobuf writer produces exactly prost's bytes for every
//! event of every venue fixture (and status events), and decodes back to
//! the same message; both forms decode back to the event.

use std::path::Path;

use mdrelay::application::fixture::{FrameLine, parse_frame_line};
use mdrelay::config::venue::load_venues_dir;
use mdrelay::domain::{Event, Instrument, StatusState, Timestamp};
use mdrelay::engine::mapper::Mapper;
use mdrelay::serialization::{decode, proto, to_message, to_protobuf, to_protobuf_via_prost};
use prost::Message;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn same_bytes(e: &Event) {
    let (mut direct, mut reference) = (Vec::new(), Vec::new());
    to_protobuf(e, &mut direct);
    to_protobuf_via_prost(e, &mut reference);
    assert_eq!(direct, reference, "{}", e.id);
    assert_eq!(
        proto::Event::decode(direct.as_slice()).unwrap(),
        to_message(e)
    );
    // What a consumer reads back (`mdrelay tail`, `mdrelay::client`) is the
    // event itself, from either form.
    let mut json = Vec::new();
    mdrelay::serialization::to_json(e, &mut json);
    assert_eq!(&decode(None, &direct).unwrap(), e, "{}", e.id);
    assert_eq!(
        &decode(Some("application/json"), &json).unwrap(),
        e,
        "{}",
        e.id
    );
}

#[test]
fn direct_protobuf_matches_prost_on_every_fixture_event() {
    let (venues, problems) = load_venues_dir(&root().join("venues"));
    assert!(problems.is_empty());
    let mut n = 0;
    let mut big = 0;
    let mut books = Vec::new();
    for (id, venue) in &venues {
        let dir = root().join("fixtures").join(id);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if !name.ends_with(".jsonl") || name.ends_with(".expected.jsonl") {
                continue;
            }
            // Market-specific cases map under the default market here; the
            // events that do map are what is compared.
            let mut mapper = Mapper::new(venue.id.clone(), None, Default::default());
            let mut out = Vec::new();
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                if let FrameLine::Frame(f) = parse_frame_line(line) {
                    out.clear();
                    let _ = mapper.map(
                        venue,
                        f.as_raw(),
                        Timestamp(1_700_000_000_000_000_000),
                        &mut out,
                    );
                    for e in &out {
                        same_bytes(e);
                        if e.data_type() == mdrelay::domain::DataType::L2Orderbook {
                            books.push(e.clone());
                        }
                        let mut b = Vec::new();
                        to_protobuf(e, &mut b);
                        big += usize::from(b.len() >= 128);
                        n += 1;
                    }
                }
            }
        }
    }
    for state in [
        StatusState::Connected,
        StatusState::Disconnected,
        StatusState::Resubscribed,
        StatusState::Gap,
    ] {
        let inst = std::sync::Arc::new(Instrument::new("BTCUSDT", "BTC/USDT"));
        let e = mdrelay::application::status::event(
            &std::sync::Arc::from("venue-a"),
            inst,
            state,
            "reason",
            Timestamp(5),
        );
        same_bytes(&e);
    }
    // Book tops carry the book-update message under their own field; the
    // fixture book events, re-labelled as tops, encode identically too.
    let mut tops = 0;
    for e in &books {
        let mdrelay::domain::Payload::Book(u) = &e.payload else {
            continue;
        };
        let top = Event {
            payload: mdrelay::domain::Payload::BookTop(u.clone()),
            ..e.clone()
        };
        same_bytes(&top);
        assert!(matches!(
            to_message(&top).data,
            Some(proto::event::Data::L2Top(_))
        ));
        tops += 1;
    }
    assert!(tops > 100, "{tops} book tops");
    eprintln!("{n} fixture events encoded identically ({big} of 128 bytes or more)");
    assert!(n > 1000 && big > 100, "{n} events, {big} long");
}
