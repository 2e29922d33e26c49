//! Logging: `tracing` with a `RUST_LOG` filter, pretty or JSON lines, on stderr.
//! Colours only when stderr is a terminal (and `NO_COLOR` is unset): a log file or a
//! pipe to a log shipper gets plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Returns an error line when `RUST_LOG` is invalid.
/// Calling it twice (tests) is harmless: the first subscriber stays.
pub fn init(settings: &LogSettings) -> Result<(), String> {
    let filter = EnvFilter::try_new(&settings.filter).map_err(|e| {
        format!(
            "invalid configuration: RUST_LOG is \"{}\"; {e}",
            settings.filter
        )
    })?;
    let colour = std::io::stderr().is_terminal() && !settings.no_color;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Pretty => builder.with_target(true).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    Ok(())
}
