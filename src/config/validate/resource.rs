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
