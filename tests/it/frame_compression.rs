//! Binary frames in each `[frames] compression`: a recorded OKX frame
//! (`fixtures/okx/trades.jsonl`, sent as text by the venue) is compressed
//! here with flate2 and fed as a binary frame through the OKX venue with
//! `compression` set; the events must equal those of the plain text frame.
//! (OKX itself sends text: the compressed frames are made by the test.)

use std::io::Write;
use std::path::Path;

use flate2::Compression as Level;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use mdrelay::config::venue::compile_venue;
use mdrelay::domain::Timestamp;
use mdrelay::engine::mapper::{MapError, Mapper, Outcome, RawFrame};
use mdrelay::engine::venue::Venue;
use mdrelay::serialization::to_json_line;

fn okx(compression: Option<&str>) -> Venue {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut src = std::fs::read_to_string(root.join("venues/okx.toml")).unwrap();
    if let Some(c) = compression {
        assert!(src.contains("\n[frames]\n"));
        src = src.replace(
            "\n[frames]\n",
            &format!("\n[frames]\ncompression = \"{c}\"\n"),
        );
    }
    compile_venue("okx", Path::new("venues/okx.toml"), &src).unwrap()
}

fn recorded_frame() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("fixtures/okx/trades.jsonl")).unwrap();
    text.lines().next().unwrap().to_owned()
}

fn compress(how: &str, text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    match how {
        "gzip" => {
            let mut e = GzEncoder::new(Vec::new(), Level::default());
            e.write_all(bytes).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = DeflateEncoder::new(Vec::new(), Level::default());
            e.write_all(bytes).unwrap();
            e.finish().unwrap()
        }
        "zlib" => {
            let mut e = ZlibEncoder::new(Vec::new(), Level::default());
            e.write_all(bytes).unwrap();
            e.finish().unwrap()
        }
        other => panic!("{other}"),
    }
}

fn map(venue: &Venue, frame: RawFrame<'_>) -> Result<Vec<String>, MapError> {
    let mut mapper = Mapper::new(venue.id.clone(), None, Default::default());
    let mut events = Vec::new();
    let outcome = mapper.map(venue, frame, Timestamp(0), &mut events)?;
    assert!(
        matches!(outcome, Outcome::Data { events: 1.. }),
        "{outcome:?}"
    );
    Ok(events.iter().map(to_json_line).collect())
}

#[test]
fn each_compression_gives_the_events_of_the_plain_frame() {
    let text = recorded_frame();
    let plain = map(&okx(None), RawFrame::Text(&text)).unwrap();
    assert!(!plain.is_empty());
    for (setting, encoding) in [
        ("gzip", "gzip"),
        ("deflate", "deflate"),
        ("zlib", "zlib"),
        ("auto", "gzip"),
        ("auto", "zlib"),
    ] {
        let venue = okx(Some(setting));
        let bytes = compress(encoding, &text);
        assert_ne!(bytes.as_slice(), text.as_bytes());
        let got = map(&venue, RawFrame::Binary(&bytes))
            .unwrap_or_else(|e| panic!("compression = {setting}, {encoding} frame: {e}"));
        assert_eq!(got, plain, "compression = {setting}, {encoding} frame");
        // Text frames are never inflated, whatever the setting.
        assert_eq!(map(&venue, RawFrame::Text(&text)).unwrap(), plain);
    }
}

#[test]
fn a_frame_in_another_compression_is_a_counted_error() {
    let text = recorded_frame();
    // zlib and gzip have headers; raw deflate has none, so `auto` cannot
    // recognise it and takes it for (invalid) text.
    for (setting, encoding) in [("zlib", "deflate"), ("gzip", "zlib"), ("deflate", "gzip")] {
        let bytes = compress(encoding, &text);
        let got = map(&okx(Some(setting)), RawFrame::Binary(&bytes));
        assert!(
            matches!(
                got,
                Err(MapError::Decode(_) | MapError::Utf8 | MapError::Json(_))
            ),
            "compression = {setting}, {encoding} frame: {got:?}"
        );
    }
    let got = map(
        &okx(Some("auto")),
        RawFrame::Binary(&compress("deflate", &text)),
    );
    assert!(
        matches!(got, Err(MapError::Utf8 | MapError::Json(_))),
        "{got:?}"
    );
}
