//! `resource:`: RFC 9728 protected resource metadata.

use url::Url;

use super::Issues;
use crate::config::raw::RawResource;
use crate::config::ResourceSettings;

/// The resource identifier (an http(s) URL without query or fragment) and where its
/// metadata is served: `/.well-known/oauth-protected-resource` before the identifier's path.
pub(super) fn resource(issues: &mut Issues, raw: &RawResource) -> ResourceSettings {
    let url = match Url::parse(&raw.id) {
        Ok(u)
            if matches!(u.scheme(), "https" | "http")
                && u.query().is_none()
                && u.fragment().is_none() =>
        {
            Some(u)
        }
        _ => {
            issues.add(
                "resource.id",
                format!("`{}` is not a resource identifier", raw.id),
                "RFC 9728: an https URL without query or fragment, e.g. https://api.example.com",
            );
            None
        }
    };
    // RFC 9728 §3.1: the well-known segment goes between the host and the path.
    let path = url
        .as_ref()
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let metadata_path = format!("/.well-known/oauth-protected-resource{path}");
    let metadata_url = url
        .as_ref()
        .map(|u| format!("{}{metadata_path}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    if metadata_url.contains(['"', '\\']) {
        issues.add(
            "resource.id",
            "the identifier cannot contain quotes or backslashes",
            "",
        );
    }
    ResourceSettings {
        id: raw.id.clone(),
        authorization_servers: raw.authorization_servers.clone(),
        scopes_supported: raw.scopes_supported.clone(),
        metadata_path,
        metadata_url,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    #[rustfmt::skip]
    fn each_rule_has_a_row() {
        assert_rows(&[
            ("resource: { id: api.example.com }\n", "resource.id", "`api.example.com` is not a resource identifier"),
            ("resource: { id: \"urn:example:api\" }\n", "resource.id", "`urn:example:api` is not a resource identifier"),
            ("resource: { id: \"https://api.example.com/?v=1\" }\n", "resource.id", "is not a resource identifier"),
            ("resource: { id: \"https://api.example.com/#top\" }\n", "resource.id", "is not a resource identifier"),
        ]);
        // The second rule (no quote or backslash in the metadata URL) guards the challenge's
        // quoted-string: a parsed URL percent-encodes quotes and reads a backslash as a
        // slash, so no identifier reaches it today; these are the spellings that would.
        assert_valid(&[
            "resource: { id: \"https://api.example.com/a\\\"b\" }\n",
            "resource: { id: \"https://api.example.com/a\\\\b\" }\n",
        ]);
    }

    #[test]
    fn valid_values_pass() {
        assert_valid(&[
            "resource: { id: \"https://api.example.com\" }\n",
            "resource: { id: \"http://localhost:3000/v1/\", authorization_servers: [\"https://idp.example.com\"], scopes_supported: [read] }\n",
        ]);
        let Ok(s) = settings("resource: { id: \"https://api.example.com/v1/\" }\n") else {
            panic!("valid")
        };
        let r = s.resource.expect("a resource");
        assert_eq!(r.metadata_path, "/.well-known/oauth-protected-resource/v1");
        assert_eq!(
            r.metadata_url,
            "https://api.example.com/.well-known/oauth-protected-resource/v1"
        );
        assert!(settings("").ok().is_some_and(|s| s.resource.is_none()));
    }
}
