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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::config::{LogFormat, Overrides};

    #[test]
    #[rustfmt::skip]
    fn each_rule_has_a_row() {
        assert_rows(&[
            ("log: { format: xml }\n", "log.format", "`xml` is not a log format"),
            ("log: { level: \"tokengate=loud\" }\n", "log.level", "`tokengate=loud` is not a log level or filter"),
        ]);
        let cli = Overrides {
            log_format: Some("yaml".into()),
            ..Overrides::default()
        };
        assert_rows_with(&cli, &[("log: { format: json }\n", "log.format", "`yaml` is not a log format")]);
    }

    #[test]
    fn valid_values_pass() {
        assert_valid(&[
            "log: { format: text, level: info }\n",
            "log: { format: json, level: \"warn,tokengate=debug\" }\n",
        ]);
        let Ok(s) = settings("") else {
            panic!("the empty file is valid")
        };
        assert_eq!(
            (s.log.format, s.log.level.as_str()),
            (LogFormat::Text, "info")
        );
        let cli = Overrides {
            log_format: Some("json".into()),
            ..Overrides::default()
        };
        let s = validate_with("log: { format: xml }\n", &cli).ok();
        assert_eq!(s.map(|s| s.log.format), Some(LogFormat::Json));
    }
}
