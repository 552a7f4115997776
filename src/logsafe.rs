//! Values from identity providers, discovery documents and configuration files, made safe
//! for a log line.
//!
//! The text log format writes a `%value` field as it is: a `kid` holding a newline would
//! start a forged line, and an ESC byte would reach the terminal or file. [`Escaped`] writes
//! every control character as a Rust escape (`\n`, `\r`, `\t`, `\u{1b}`), as the client
//! values of the access log already are; the JSON format escapes them anyway.

use std::fmt;

/// Displays `T` with every control character escaped (`\n`, `\u{1b}`, ...); other
/// characters, non-ASCII ones included, are written as they are.
pub struct Escaped<T>(pub T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        if !text.chars().any(char::is_control) {
            return f.write_str(&text);
        }
        for c in text.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

/// Whether log lines on stderr may carry colour escapes: only on a terminal, and never when
/// `NO_COLOR` is set to a non-empty value (<https://no-color.org>).
pub fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        assert_eq!(
            Escaped("a\nFAKE line\u{1b}[31m").to_string(),
            "a\\nFAKE line\\u{1b}[31m"
        );
        assert_eq!(Escaped("kid-é 1").to_string(), "kid-é 1");
        assert_eq!(Escaped("\r\t\u{7f}").to_string(), "\\r\\t\\u{7f}");
    }
}
