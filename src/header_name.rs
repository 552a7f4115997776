//! Header names as upstreams read them: letter case ignored and `_` read as `-` (CGI, PHP,
//! Django, Rails and nginx with `underscores_in_headers` all turn `X_Auth_User` into the same
//! variable as `X-Auth-User`). Every strip rule compares names this way.
//!
//! The comparisons run on every request header: they work on bytes and allocate nothing.

/// Lower-case with `_` as `-`: the normal form patterns are stored in.
pub fn normalize(name: &str) -> String {
    name.bytes()
        .map(|b| char::from(normalize_byte(b)))
        .collect()
}

/// `name` equals `normal` (a name already in [`normalize`] form) once it is normalised.
pub fn normalized_eq(name: &str, normal: &str) -> bool {
    name.len() == normal.len() && normalized_starts_with(name, normal)
}

/// `name`, once normalised, starts with `normal` (in [`normalize`] form).
pub fn normalized_starts_with(name: &str, normal: &str) -> bool {
    name.len() >= normal.len()
        && name
            .bytes()
            .zip(normal.bytes())
            .all(|(a, b)| normalize_byte(a) == b)
}

fn normalize_byte(b: u8) -> u8 {
    match b {
        b'_' => b'-',
        other => other.to_ascii_lowercase(),
    }
}

/// A header name, or every name starting with a prefix (`X-Consumer-*`), in normal form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderPattern {
    /// Exactly this name (written `X-Auth-User`).
    Name(String),
    /// Every name that starts with this (written `X-Consumer-*`).
    Prefix(String),
}

impl HeaderPattern {
    /// Parses `Name` or `Prefix*`; `None` when the text is no header name (or only `*`).
    pub fn parse(text: &str) -> Option<HeaderPattern> {
        let (body, prefix) = match text.strip_suffix('*') {
            Some(body) => (body, true),
            None => (text, false),
        };
        if body.is_empty() || http::HeaderName::from_bytes(body.as_bytes()).is_err() {
            return None;
        }
        let body = normalize(body);
        Some(if prefix {
            HeaderPattern::Prefix(body)
        } else {
            HeaderPattern::Name(body)
        })
    }

    /// Whether `name` (in any spelling) is covered.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            HeaderPattern::Name(n) => normalized_eq(name, n),
            HeaderPattern::Prefix(p) => normalized_starts_with(name, p),
        }
    }
}

impl std::fmt::Display for HeaderPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderPattern::Name(n) => f.write_str(n),
            HeaderPattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_compare_equal() {
        assert!(normalized_eq("X_Auth_Subject", "x-auth-subject"));
        assert!(normalized_eq("x-auth-subject", "x-auth-subject"));
        assert!(!normalized_eq("x-auth-subjects", "x-auth-subject"));
        assert!(normalized_starts_with("OIDC_CLAIM_email", "oidc-claim-"));
        assert_eq!(normalize("OIDC_CLAIM_Email"), "oidc-claim-email");
    }

    #[test]
    fn patterns() {
        let p = HeaderPattern::parse("X-Consumer-*");
        assert_eq!(p, Some(HeaderPattern::Prefix("x-consumer-".into())));
        assert!(p.as_ref().is_some_and(|p| p.matches("X_CONSUMER_ID")));
        assert!(!p.as_ref().is_some_and(|p| p.matches("X-Consumer")));
        let n = HeaderPattern::parse("Remote-User");
        assert!(n.as_ref().is_some_and(|p| p.matches("remote_user")));
        assert!(!n.as_ref().is_some_and(|p| p.matches("remote-users")));
        for bad in ["", "*", "a b*", "x:y"] {
            assert_eq!(HeaderPattern::parse(bad), None, "{bad}");
        }
        assert_eq!(p.map(|p| p.to_string()).unwrap_or_default(), "x-consumer-*");
    }
}
