//! `mdrelay schema`: write the JSON Schemas editors use to check the files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// Arguments of `mdrelay schema`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output directory.
    #[arg(long, default_value = "schema")]
    pub out: PathBuf,
}

/// Write `venue.schema.json` (and `relay.schema.json`) into the directory.
pub(super) fn run(args: Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    for (name, text) in crate::config::schemas() {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
