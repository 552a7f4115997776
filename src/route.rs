//! Stage 1: method + path → the route that decides what the request needs.
//!
//! Paths are matched exactly, never after a decoding or normalisation that an upstream might
//! not share: `/secure/`, `//secure` or `/%73ecure` are simply not `/secure` (404).

use http::{HeaderMap, Method};

use crate::builtin::Builtin;
use crate::cors;
use crate::rejection::Rejection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A CORS preflight, answered without a token.
    Preflight,
    /// `/healthz`: the process is up.
    Health,
    /// `/readyz`: every issuer has keys.
    Ready,
    /// `POST /_dev/token`, only with the dev issuer on.
    DevToken,
    /// A quickstart route; needs a valid token.
    Builtin(Builtin),
}

/// What the app offers beyond the fixed routes.
pub struct RouteTable {
    pub cors: bool,
    pub dev_issuer: bool,
}

const GET_HEAD: &str = "GET, HEAD";

impl RouteTable {
    pub fn route(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Route, Rejection> {
        if self.cors && cors::is_preflight(method, headers) {
            return Ok(Route::Preflight);
        }
        let (route, allow) = match path {
            "/healthz" => (Route::Health, GET_HEAD),
            "/readyz" => (Route::Ready, GET_HEAD),
            "/_dev/token" if self.dev_issuer => (Route::DevToken, "POST"),
            _ => match Builtin::for_path(path) {
                Some(b) => (Route::Builtin(b), GET_HEAD),
                None => return Err(Rejection::NotFound),
            },
        };
        let method_ok = match allow {
            GET_HEAD => method == Method::GET || method == Method::HEAD,
            _ => method == Method::POST,
        };
        if method_ok {
            Ok(route)
        } else {
            Err(Rejection::MethodNotAllowed { allow })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(dev: bool) -> RouteTable {
        RouteTable {
            cors: true,
            dev_issuer: dev,
        }
    }

    #[test]
    fn exact_paths_only() {
        let h = HeaderMap::new();
        let t = table(false);
        assert_eq!(
            t.route(&Method::GET, "/secure", &h),
            Ok(Route::Builtin(Builtin::Secure))
        );
        assert_eq!(
            t.route(&Method::GET, "/api/messages", &h),
            Ok(Route::Builtin(Builtin::Messages))
        );
        for p in [
            "/secure/",
            "//secure",
            "/%73ecure",
            "/SECURE",
            "/api/messages/../secure",
            "/",
        ] {
            assert_eq!(
                t.route(&Method::GET, p, &h),
                Err(Rejection::NotFound),
                "{p}"
            );
        }
    }

    #[test]
    fn methods() {
        let h = HeaderMap::new();
        let t = table(true);
        assert_eq!(
            t.route(&Method::HEAD, "/secure", &h),
            Ok(Route::Builtin(Builtin::Secure))
        );
        assert_eq!(
            t.route(&Method::POST, "/secure", &h),
            Err(Rejection::MethodNotAllowed { allow: GET_HEAD })
        );
        assert_eq!(
            t.route(&Method::POST, "/_dev/token", &h),
            Ok(Route::DevToken)
        );
        assert_eq!(
            t.route(&Method::GET, "/_dev/token", &h),
            Err(Rejection::MethodNotAllowed { allow: "POST" })
        );
        assert_eq!(
            table(false).route(&Method::POST, "/_dev/token", &h),
            Err(Rejection::NotFound)
        );
    }
}
