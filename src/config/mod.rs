//! Loading `proxy.yaml`: read → substitute `${VAR}` → parse (`raw.rs`) → validate
//! (`validate.rs`) → runtime [`Settings`].
//!
//! Every problem carries the file, the line, the YAML path of the field and a hint saying
//! what would be valid. Parse errors stop at the first one (serde cannot go on); validation
//! reports every problem at once.

mod forward_auth;
mod raw;
mod settings;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use settings::*;

/// Changes the command line may make to what the file says.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub log_format: Option<String>,
    pub upstream: Option<String>,
}

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; `None` when the problem is not tied to one place (the file is unreadable).
    pub line: Option<usize>,
    /// Dotted YAML path, e.g. `issuers[0].audiences`; empty for the whole file.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n    hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in a configuration file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<Problem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "{n} problem{} in the configuration:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads, substitutes, parses and validates a configuration file.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Settings, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![Problem {
            file: path.to_owned(),
            line: None,
            path: String::new(),
            message: format!("cannot read the file: {e}"),
            hint: Some("pass the path of a YAML file with --config".into()),
        }])
    })?;
    load_str(path, &text, overrides)
}

/// As [`load`], from text already read (`path` names it in messages).
pub fn load_str(path: &Path, text: &str, overrides: &Overrides) -> Result<Settings, ConfigErrors> {
    let text = substitute_env(path, text, |name| std::env::var(name).ok())?;
    if let Some(problem) = repeated_key(path, &text) {
        return Err(ConfigErrors(vec![problem]));
    }
    let deserializer = serde_yaml::Deserializer::from_str(&text);
    let raw: raw::RawConfig = match serde_path_to_error::deserialize(deserializer) {
        Ok(raw) => raw,
        Err(err) => return Err(ConfigErrors(vec![parse_problem(path, err)])),
    };
    let locator = Locator::new(&text);
    validate::validate(raw, overrides)
        .map_err(|issues| {
            let mut problems: Vec<Problem> = issues
                .into_iter()
                .map(|i| Problem {
                    file: path.to_owned(),
                    line: locator.line_of(&i.path),
                    path: i.path,
                    message: i.message,
                    hint: i.hint,
                })
                .collect();
            problems.sort_by_key(|p| p.line);
            ConfigErrors(problems)
        })
        .map(|mut settings| {
            settings.source = path.to_owned();
            settings
        })
}

fn parse_problem(path: &Path, err: serde_path_to_error::Error<serde_yaml::Error>) -> Problem {
    let yaml_path = err.path().to_string();
    let inner = err.into_inner();
    let line = inner.location().map(|l| l.line());
    let message = inner.to_string();
    // serde_yaml appends " at line N column M"; the line is reported separately.
    let message = match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message,
    };
    // serde_yaml starts some messages with the path, which is reported separately.
    let message = match message.split_once(": ") {
        Some((prefix, rest)) if !prefix.contains(' ') => rest.to_owned(),
        _ => message,
    };
    let hint = if message.contains("unknown field") {
        Some("remove the field or fix its spelling; the valid names are listed above".into())
    } else if message.contains("invalid type") {
        Some("check the value's type against the README's configuration reference".into())
    } else {
        None
    };
    Problem {
        file: path.to_owned(),
        line,
        path: if yaml_path == "." {
            String::new()
        } else {
            yaml_path
        },
        message,
        hint,
    }
}

/// YAML 1.2 §3.2.1.1: mapping keys are unique. serde would keep the last value of a repeated
/// key (`{cid: good-client, cid: other-client}` asserts only `other-client`), so every
/// mapping of the file is checked first, and a repeat is refused with its line and path.
fn repeated_key(path: &Path, text: &str) -> Option<Problem> {
    let strict = marked_yaml::LoaderOptions::default().error_on_duplicate_keys(true);
    let Err(marked_yaml::LoadError::DuplicateKey(dup)) =
        marked_yaml::parse_yaml_with_options(0, text, strict)
    else {
        // Any other error is serde_yaml's to report, with its own message.
        return None;
    };
    let first = dup.prev_key.span().start().map(|m| (m.line(), m.column()));
    let again = dup.key.span().start().map(|m| m.line());
    let name = dup.key.as_str();
    let yaml_path = marked_yaml::parse_yaml(0, text)
        .ok()
        .and_then(|root| path_of_key(&root, first?, ""))
        .unwrap_or_else(|| name.to_owned());
    Some(Problem {
        file: path.to_owned(),
        line: again.or(first.map(|(line, _)| line)),
        path: yaml_path,
        message: format!(
            "`{name}` is repeated in this mapping{}",
            first.map_or(String::new(), |(line, _)| format!(" (first on line {line})"))
        ),
        hint: Some(
            "a key may appear once per mapping (YAML 1.2); keep one, or list several values under one key".into(),
        ),
    })
}

/// The dotted path of the mapping key that starts at `at` (line, column), if any.
fn path_of_key(node: &marked_yaml::Node, at: (usize, usize), prefix: &str) -> Option<String> {
    if let Some(map) = node.as_mapping() {
        for (key, value) in map.iter() {
            let here = if prefix.is_empty() {
                key.as_str().to_owned()
            } else {
                format!("{prefix}.{}", key.as_str())
            };
            if key.span().start().map(|m| (m.line(), m.column())) == Some(at) {
                return Some(here);
            }
            if let Some(found) = path_of_key(value, at, &here) {
                return Some(found);
            }
        }
    } else if let Some(seq) = node.as_sequence() {
        for (i, item) in seq.iter().enumerate() {
            if let Some(found) = path_of_key(item, at, &format!("{prefix}[{i}]")) {
                return Some(found);
            }
        }
    }
    None
}

/// A piece of the file's text: literal text, or a `${NAME}` on a (0-based) line.
enum Piece<'a> {
    Text(&'a str),
    Var { line: usize, name: &'a str },
}

/// Splits `text` at every `${NAME}` (`$${` is a literal `${`), with a problem for each
/// unterminated `${` or invalid name.
fn pieces<'a>(path: &Path, text: &'a str) -> (Vec<Piece<'a>>, Vec<Problem>) {
    let mut pieces = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(start) = rest.find('$') {
            pieces.push(Piece::Text(&rest[..start]));
            let after = &rest[start..];
            if let Some(stripped) = after.strip_prefix("$${") {
                pieces.push(Piece::Text("${"));
                rest = stripped;
            } else if let Some(body) = after.strip_prefix("${") {
                let Some(end) = body.find('}') else {
                    problems.push(env_problem(
                        path,
                        index,
                        "an unterminated ${ ",
                        "write ${NAME}",
                    ));
                    pieces.push(Piece::Text(after));
                    rest = "";
                    continue;
                };
                let name = &body[..end];
                let valid_name = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if valid_name {
                    pieces.push(Piece::Var { line: index, name });
                } else {
                    problems.push(env_problem(
                        path,
                        index,
                        &format!("`${{{name}}}` is not a variable name"),
                        "names are letters, digits and _, e.g. ${OKTA_DOMAIN}",
                    ));
                }
                rest = &body[end + 1..];
            } else {
                pieces.push(Piece::Text("$"));
                rest = &after[1..];
            }
        }
        pieces.push(Piece::Text(rest));
    }
    (pieces, problems)
}

/// Replaces `${NAME}` with the environment variable's value, as exactly one YAML value: a
/// value holding a newline or control character is refused outright, and so is one that would
/// change the structure of the file (add or remove keys, items or mappings, end a quoted
/// string, start a comment), as the OpenTelemetry configuration specification requires of
/// the same feature. An unset variable is an error; `$${` stands for a literal `${`.
fn substitute_env(
    path: &Path,
    text: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigErrors> {
    let (pieces, mut problems) = pieces(path, text);
    // The value of each variable occurrence, in order.
    let mut values: Vec<(usize, &str, String)> = Vec::new();
    for piece in &pieces {
        let Piece::Var { line, name } = piece else {
            continue;
        };
        match get(name) {
            Some(value) if value.chars().any(char::is_control) => problems.push(env_problem(
                path,
                *line,
                &format!("the value of `${{{name}}}` holds a newline or control character"),
                "a variable becomes exactly one value; remove the line break (or control character) from it",
            )),
            Some(value) => values.push((*line, name, value)),
            None => problems.push(env_problem(
                path,
                *line,
                &format!("environment variable {name} is not set"),
                &format!("export {name}=... before starting, or write the value in the file"),
            )),
        }
    }
    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    // The text with occurrence `only` (or, with `None`, every occurrence) substituted and
    // the others as private-use markers.
    let render = |only: Option<usize>| {
        let mut out = String::with_capacity(text.len());
        let mut occurrence = 0;
        for piece in &pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var { .. } => {
                    match (only, values.get(occurrence)) {
                        (None, Some((_, _, value))) => out.push_str(value),
                        (Some(i), Some((_, _, value))) if i == occurrence => out.push_str(value),
                        _ => out.push_str(&marker(occurrence)),
                    }
                    occurrence += 1;
                }
            }
        }
        out
    };
    // Every occurrence as a marker: the structure the file has whatever the values are. (A
    // file that does not parse this way is left to the parser's own message below.)
    let template = if values.is_empty() {
        None
    } else {
        serde_yaml::from_str::<serde_yaml::Value>(&render(Some(usize::MAX))).ok()
    };
    if let Some(template) = template {
        for (i, (line, name, value)) in values.iter().enumerate() {
            let expected = fill_marker(&template, &marker(i), value);
            let same = serde_yaml::from_str::<serde_yaml::Value>(&render(Some(i)))
                .is_ok_and(|actual| same_shape(&expected, &actual));
            if !same {
                problems.push(env_problem(
                    path,
                    *line,
                    &format!("`${{{name}}}` would change the structure of the file"),
                    "a variable becomes exactly one value: remove YAML syntax from its value (`: `, ` #`, quotes, brackets, commas in a flow list), or quote the ${...} in the file",
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(render(None))
    } else {
        Err(ConfigErrors(problems))
    }
}

/// A text no configuration contains (Unicode private-use characters) standing for the
/// `i`th variable while the file's structure is compared.
fn marker(i: usize) -> String {
    format!("\u{E000}{i}\u{E001}")
}

/// `template` with `marker` replaced by `value` in every string (keys included).
fn fill_marker(template: &serde_yaml::Value, marker: &str, value: &str) -> serde_yaml::Value {
    use serde_yaml::Value;
    match template {
        Value::String(s) => Value::String(s.replace(marker, value)),
        Value::Sequence(items) => Value::Sequence(
            items
                .iter()
                .map(|i| fill_marker(i, marker, value))
                .collect(),
        ),
        Value::Mapping(map) => Value::Mapping(
            map.iter()
                .map(|(k, v)| (fill_marker(k, marker, value), fill_marker(v, marker, value)))
                .collect(),
        ),
        Value::Tagged(tagged) => Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
            tag: tagged.tag.clone(),
            value: fill_marker(&tagged.value, marker, value),
        })),
        other => other.clone(),
    }
}

/// Same mapping keys in the same order, same sequence lengths, and every scalar the same
/// text: a string of the template may come back as the number, boolean or null it spells.
fn same_shape(expected: &serde_yaml::Value, actual: &serde_yaml::Value) -> bool {
    use serde_yaml::Value;
    match (expected, actual) {
        (Value::Mapping(a), Value::Mapping(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b.iter())
                    .all(|((ka, va), (kb, vb))| same_shape(ka, kb) && same_shape(va, vb))
        }
        (Value::Sequence(a), Value::Sequence(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_shape(x, y))
        }
        (Value::Tagged(a), Value::Tagged(b)) => a.tag == b.tag && same_shape(&a.value, &b.value),
        (Value::String(a), Value::String(b)) => a == b,
        (Value::String(text), scalar @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => {
            serde_yaml::from_str::<Value>(text).is_ok_and(|v| &v == scalar)
        }
        (a, b) => a == b,
    }
}

fn env_problem(path: &Path, line_index: usize, message: &str, hint: &str) -> Problem {
    Problem {
        file: path.to_owned(),
        line: Some(line_index + 1),
        path: String::new(),
        message: message.to_owned(),
        hint: Some(hint.to_owned()),
    }
}

/// Finds the line of a YAML path such as `issuers[0].claims.cid`, for messages.
struct Locator {
    root: Option<marked_yaml::Node>,
}

impl Locator {
    fn new(text: &str) -> Locator {
        Locator {
            root: marked_yaml::parse_yaml(0, text).ok(),
        }
    }

    /// The line of the deepest part of `path` that exists in the file.
    fn line_of(&self, path: &str) -> Option<usize> {
        let mut node = self.root.as_ref()?;
        let mut line = None;
        for part in split_path(path) {
            let found = match part {
                PathPart::Key(key) => node
                    .as_mapping()
                    .and_then(|map| map.iter().find(|(k, _)| k.as_str() == key))
                    .map(|(k, v)| (k.span().start().map(|m| m.line()), v)),
                PathPart::Index(i) => node
                    .as_sequence()
                    .and_then(|seq| seq.get(i))
                    .map(|v| (v.span().start().map(|m| m.line()), v)),
            };
            let Some((at, next)) = found else {
                return line;
            };
            line = at.or(line);
            node = next;
        }
        line
    }
}

enum PathPart<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> impl Iterator<Item = PathPart<'_>> {
    path.split('.')
        .filter(|s| !s.is_empty())
        .flat_map(|segment| {
            let mut parts = Vec::new();
            let (key, mut rest) = match segment.find('[') {
                Some(i) => (&segment[..i], &segment[i..]),
                None => (segment, ""),
            };
            if !key.is_empty() {
                parts.push(PathPart::Key(key));
            }
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(end) = stripped.find(']') else { break };
                if let Ok(i) = stripped[..end].parse() {
                    parts.push(PathPart::Index(i));
                }
                rest = &stripped[end + 1..];
            }
            parts
        })
}

/// Parses `250ms`, `30s`, `5m`, `1h`, `1d`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => return Some(Duration::from_millis(n)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return None,
    };
    n.checked_mul(seconds).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("5 minutes"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
    }

    #[test]
    fn env_substitution() {
        let get = |n: &str| (n == "HOST").then(|| "example.okta.com".to_string());
        let p = Path::new("x.yaml");
        assert_eq!(
            substitute_env(p, "issuer: https://${HOST}/oauth2\n", get).ok(),
            Some("issuer: https://example.okta.com/oauth2\n".to_string())
        );
        assert_eq!(
            substitute_env(p, "a: $${HOST} $5\n", get).ok(),
            Some("a: ${HOST} $5\n".to_string())
        );
        let err = substitute_env(p, "a: 1\nb: ${MISSING}\n", get).err();
        let problems = err.map(|e| e.0).unwrap_or_default();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(2));
        assert!(problems[0].message.contains("MISSING"));
    }

    #[test]
    fn a_variable_is_one_value_never_structure() {
        let p = Path::new("x.yaml");
        let env = |value: &'static str| move |_: &str| Some(value.to_string());
        let line = |r: Result<String, ConfigErrors>| {
            r.err()
                .map(|e| {
                    e.0.into_iter()
                        .map(|p| p.message)
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .unwrap_or_default()
        };
        // Plain values, numbers and values with spaces stay one value.
        assert!(substitute_env(p, "a:\n  b: ${X}\n", env("0oa 1 x")).is_ok());
        assert!(substitute_env(p, "port: ${X}\n", env("8080")).is_ok());
        assert!(substitute_env(p, "u: https://${X}/p\n", env("dev-1.okta.com")).is_ok());
        assert!(substitute_env(p, "l: [${X}]\n", env("api://x")).is_ok());
        // Structure: a flow list grows, a quoted string ends, a comment starts, a key appears.
        for (text, value) in [
            ("l: [${X}]\n", "a, b"),
            ("u: \"https://${X}/p\"\n", "x\", allow_http: true, y: \"z"),
            (
                "i: { issuer: https://${X}/p, aud: [a] }\n",
                "e.com, allow_http: true",
            ),
            ("c: ${X}\n", "abc #comment"),
            ("c: ${X}\n", "a: b"),
            ("c: ${X}\n", "[a, b]"),
        ] {
            let message = line(substitute_env(p, text, env(value)));
            assert!(
                message.contains("`${X}` would change the structure of the file"),
                "{text} with {value:?}: {message}"
            );
        }
        for value in ["a\nb: c", "a\rb", "a\u{1b}[31m", "a\tb"] {
            let message = line(substitute_env(p, "c: ${X}\n", env(value)));
            assert!(
                message.contains("newline or control character"),
                "{value:?}: {message}"
            );
        }
    }

    #[test]
    fn locator_finds_nested_paths() {
        let text = "listen: 1\nissuers:\n  - issuer: a\n    audiences: []\n  - issuer: b\n    claims: { cid: x }\n";
        let l = Locator::new(text);
        assert_eq!(l.line_of("listen"), Some(1));
        assert_eq!(l.line_of("issuers[0].audiences"), Some(4));
        assert_eq!(l.line_of("issuers[1]"), Some(5));
        assert_eq!(l.line_of("issuers[1].claims.cid"), Some(6));
        assert_eq!(l.line_of("issuers[1].missing"), Some(5));
    }
}
