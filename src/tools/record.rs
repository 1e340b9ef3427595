//! `mdrelay record`: connect to a venue exactly as `run` does (bootstrap,
//! templates, heartbeats, replies) and write every received frame in the
//! fixture format, so a venue's API change can be captured as new fixtures.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::application::health::Health;
use crate::application::metrics::Metrics;
use crate::application::pipeline::Queues;
use crate::application::relay::Shared;
use crate::config::relay::VenueSetup;
use crate::infrastructure::rest::Rest;
use crate::serialization::PayloadFormat;
use crate::serialization::frames::{OwnedFrame, binary_line};

/// What was recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordReport {
    /// Frames written.
    pub frames: u64,
    /// Bytes received.
    pub bytes: u64,
}

/// Record the venue's frames into `out` for `duration`. The frames go to
/// `<out>.partial` first; `out` is written only when at least one frame
/// arrived (a recording of nothing leaves no file behind).
pub async fn record(
    setup: VenueSetup,
    out: &Path,
    duration: Duration,
) -> std::io::Result<RecordReport> {
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let result = record_into(setup, &partial, duration).await;
    match result {
        Ok(report) if report.frames > 0 => {
            std::fs::rename(&partial, out)?;
            Ok(report)
        }
        other => {
            let _ = std::fs::remove_file(&partial);
            other
        }
    }
}

async fn record_into(
    setup: VenueSetup,
    out: &Path,
    duration: Duration,
) -> std::io::Result<RecordReport> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let (tap, mut frames) = mpsc::unbounded_channel::<OwnedFrame>();
    // Events are mapped as in `run` (so replies and context work) and then
    // discarded: nothing is published.
    let (queues, receivers) = Queues::new(&[]);
    let drain = tokio::spawn(async move {
        let mut rxs = receivers;
        loop {
            let mut any = false;
            for (_, rx) in rxs.iter_mut() {
                while rx.try_recv().is_ok() {
                    any = true;
                }
            }
            if !any {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let root = CancellationToken::new();
    let shared = Shared {
        queues,
        metrics: Arc::new(Metrics::new()),
        health: Health::new(),
        rest: Rest::new(Duration::from_secs(10)),
        budgets: Default::default(),
        // `record` subscribes what its config lists; a `select` refresh has
        // no reloader to apply it.
        refreshed: tokio::sync::mpsc::channel(1).0,
        instruments: Default::default(),
        format: PayloadFormat::Json,
        root: root.clone(),
        tap: Some(tap),
    };
    let running = shared.start_venue(setup);
    drop(shared);
    let deadline = tokio::time::sleep(duration);
    tokio::pin!(deadline);
    let mut report = RecordReport::default();
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            f = frames.recv() => match f {
                Some(f) => write_frame(&mut file, &f, &mut report)?,
                None => break,
            },
        }
    }
    root.cancel();
    running.cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), running.tasks.wait()).await;
    while let Ok(f) = frames.try_recv() {
        write_frame(&mut file, &f, &mut report)?;
    }
    drain.abort();
    file.flush()?;
    Ok(report)
}

fn write_frame(
    file: &mut impl Write,
    f: &OwnedFrame,
    report: &mut RecordReport,
) -> std::io::Result<()> {
    match f {
        OwnedFrame::Text(t) => {
            report.bytes += t.len() as u64;
            // A text frame with a newline cannot be one line: store it as
            // binary so it round-trips exactly.
            if t.contains('\n') {
                writeln!(file, "{}", binary_line(t.as_bytes()))?;
            } else {
                writeln!(file, "{t}")?;
            }
        }
        OwnedFrame::Binary(b) => {
            report.bytes += b.len() as u64;
            writeln!(file, "{}", binary_line(b))?;
        }
    }
    report.frames += 1;
    Ok(())
}
