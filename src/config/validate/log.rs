//! `log:`: the format (`--log-format` wins) and the level or filter.

use super::Issues;
use crate::config::raw::RawLog;
use crate::config::{LogFormat, LogSettings, Overrides};

/// The log format (`text`, the default, or `json`) and a `tracing` filter (default `info`).
pub(super) fn log(issues: &mut Issues, raw: &RawLog, overrides: &Overrides) -> LogSettings {
    let format = match overrides
        .log_format
        .as_deref()
        .or(raw.format.as_deref())
        .unwrap_or("text")
    {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            issues.add(
                "log.format",
                format!("`{other}` is not a log format"),
                "use text or json",
            );
            LogFormat::Text
        }
    };
    let level = raw.level.clone().unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        issues.add(
            "log.level",
            format!("`{level}` is not a log level or filter"),
            "use error, warn, info, debug or trace, or a filter such as tokengate=debug",
        );
    }
    LogSettings { format, level }
}
