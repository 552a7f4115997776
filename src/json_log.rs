//! The log line of `log.format: json`: one JSON object per event, in the layout of
//! tracing-subscriber's `json().flatten_event(true)`:
//! `{"timestamp":"2026-11-29T20:40:12.337031Z","level":"INFO",<the event's fields>,"target":"…"}`.
//!
//! tokengate's own events are written straight into the line buffer. tracing-subscriber's
//! formatter goes through serde's `io::Write` adapter, which checks every piece it is handed
//! for UTF-8 again; with the access log on (one event per request) that was the largest cost of
//! logging (bench/load.sh, log rows). Events of other crates (which may carry `log` crate
//! metadata) and events inside a span are handed to tracing-subscriber's own formatter, so a
//! line has the same shape whichever wrote it; `tests::equal_to_tracing_subscribers_json`
//! compares the two byte for byte.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats events as JSON lines (see the module documentation). Use with
/// `tracing_subscriber::fmt::format::JsonFields` as the field formatter, so that the events
/// handed on carry their spans' fields as JSON.
pub struct JsonLines {
    stock: Format<Json>,
}

impl Default for JsonLines {
    fn default() -> JsonLines {
        JsonLines {
            stock: tracing_subscriber::fmt::format().json().flatten_event(true),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let own_and_plain = meta.target().starts_with("tokengate")
            && event.parent().is_none()
            && ctx.lookup_current().is_none()
            && meta.fields().field("log.target").is_none();
        if !own_and_plain {
            return self.stock.format_event(ctx, writer, event);
        }
        // Built in a plain String and handed over in one piece: `Writer` is a `dyn Write`,
        // and a line is some fifty small pieces.
        let mut line = String::with_capacity(512);
        line.push_str("{\"timestamp\":\"");
        SystemTime.format_time(&mut Writer::new(&mut line))?;
        line.push_str("\",\"level\":\"");
        line.push_str(meta.level().as_str());
        line.push('"');
        let mut fields = Fields {
            line: &mut line,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        line.push_str(",\"target\":");
        string(&mut line, meta.target());
        line.push_str("}\n");
        writer.write_str(&line)
    }
}

/// Writes each field as `,"name":value`, with the value typed as tracing-serde types it:
/// booleans and 64-bit integers bare, floats as serde_json writes them, everything else
/// (`%` and `?` fields, the message, 128-bit integers, errors) as a string.
struct Fields<'a> {
    line: &'a mut String,
    result: fmt::Result,
}

impl Fields<'_> {
    fn name(&mut self, field: &Field) {
        self.line.push(',');
        string(self.line, field.name());
        self.line.push(':');
    }
}

impl Visit for Fields<'_> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.name(field);
        self.line.push_str(if value { "true" } else { "false" });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.name(field);
        self.result = self.result.and(write!(self.line, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.name(field);
        self.result = self.result.and(write!(self.line, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.name(field);
        // serde_json's own float text (`30.0`, not Rust's `30`); NaN and infinities are null.
        match serde_json::to_string(&value) {
            Ok(text) => self.line.push_str(&text),
            Err(_) => self.line.push_str("null"),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.name(field);
        string(self.line, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.name(field);
        self.line.push('"');
        // A `Debug` or `Display` implementation may fail; the line is then not written.
        self.result = self.result.and(write!(Escaping(self.line), "{value:?}"));
        self.line.push('"');
    }
}

/// `text` as a JSON string, quotes included.
fn string(line: &mut String, text: &str) {
    line.push('"');
    escape(line, text);
    line.push('"');
}

/// Appends `text` as the contents of a JSON string (RFC 8259 §7), escaping as serde_json
/// does: `"` and `\`, the short forms `\b \f \n \r \t`, and `\u00xx` (lowercase hex) for
/// the other control characters below U+0020; everything else as it is.
fn escape(line: &mut String, text: &str) {
    let mut start = 0;
    for (i, &byte) in text.as_bytes().iter().enumerate() {
        let short = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Every byte escaped is ASCII, so `start..i` and `i + 1..` fall on char boundaries.
        line.push_str(&text[start..i]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            line.push_str("\\u00");
            line.push(char::from(HEX[usize::from(byte >> 4)]));
            line.push(char::from(HEX[usize::from(byte & 0xf)]));
        } else {
            line.push_str(short);
        }
        start = i + 1;
    }
    line.push_str(&text[start..]);
}

/// [`escape`] for what a `Debug` or `Display` implementation writes.
struct Escaping<'a>(&'a mut String);

impl Write for Escaping<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        escape(self.0, text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;
    use tracing_subscriber::fmt::format::JsonFields;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if let Ok(mut all) = self.0.lock() {
                all.extend_from_slice(bytes);
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
            String::from_utf8(bytes).unwrap_or_default()
        }
    }

    /// What `emit` logs, through tracing-subscriber's JSON formatter and through ours.
    fn both(emit: impl Fn()) -> (String, String) {
        let stock = Captured::default();
        let ours = Captured::default();
        let stock_subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(stock.clone())
            .finish();
        let our_subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines::default())
            .with_writer(ours.clone())
            .finish();
        tracing::subscriber::with_default(stock_subscriber, &emit);
        tracing::subscriber::with_default(our_subscriber, &emit);
        (stock.text(), ours.text())
    }

    /// The lines without their timestamps' values (the two formatters run microseconds
    /// apart), after checking each timestamp's shape: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    fn untimed(lines: &str) -> Vec<String> {
        assert!(lines.ends_with('\n'), "{lines}");
        lines.lines().map(untimed_line).collect()
    }

    fn untimed_line(line: &str) -> String {
        let prefix = "{\"timestamp\":\"";
        assert!(line.starts_with(prefix), "{line}");
        let stamp = &line[prefix.len()..prefix.len() + 27];
        assert!(
            stamp.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                10 => b == b'T',
                13 | 16 => b == b':',
                19 => b == b'.',
                26 => b == b'Z',
                _ => b.is_ascii_digit(),
            }),
            "{stamp}"
        );
        format!("{prefix}{}", &line[prefix.len() + 27..])
    }

    struct Shown(String);
    impl fmt::Display for Shown {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }

    proptest! {
        /// Every kind of field, with any text in it (control characters, quotes, backslashes,
        /// non-ASCII): the same line as tracing-subscriber's, and valid JSON.
        #[test]
        fn equal_to_tracing_subscribers_json(
            text in any::<String>(),
            shown in any::<String>(),
            number in any::<u64>(),
            signed in any::<i64>(),
            float in any::<f64>(),
            flag in any::<bool>(),
        ) {
            let (stock, ours) = both(|| {
                tracing::info!(
                    target: "tokengate::access",
                    text = text.as_str(),
                    shown = %Shown(shown.clone()),
                    debugged = ?text,
                    number,
                    signed,
                    float,
                    flag,
                    wide = u128::from(number) << 64,
                    "a message {text}"
                );
                tracing::warn!(target: "tokengate::server", "plain");
            });
            prop_assert_eq!(untimed(&stock), untimed(&ours));
            for line in ours.lines() {
                prop_assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "{}", line);
            }
        }
    }

    #[test]
    fn every_control_character_is_escaped_as_serde_json_does() {
        let all: String = (0u8..0x80).map(char::from).collect();
        let (stock, ours) = both(|| tracing::error!(target: "tokengate", all = all.as_str()));
        assert_eq!(untimed(&stock), untimed(&ours));
        assert!(ours.contains(r#"\u0000\u0001"#) && ours.contains(r#"\b\t\n\u000b\f\r"#));
    }

    #[test]
    fn other_crates_events_and_events_in_spans_are_formatted_by_tracing_subscriber() {
        let (stock, ours) = both(|| {
            tracing::info!(target: "hyper::proto", bytes = 3_u64, "read");
            let span = tracing::info_span!(target: "tokengate", "request", id = "abc");
            let _entered = span.enter();
            tracing::info!(target: "tokengate::access", status = 200_u64);
        });
        assert_eq!(untimed(&stock), untimed(&ours));
        assert!(
            ours.contains(r#""spans":[{"id":"abc","name":"request"}]"#),
            "{ours}"
        );
    }
}
