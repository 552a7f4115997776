//! The attack suite: one test per known attack on a JWT-verifying reverse proxy, each through
//! the real proxy with an echo upstream behind it. Every test asserts the exact status, that
//! nothing reached the upstream when nothing should have, and that the proxy still serves a
//! valid request afterwards. Each cites the RFC section or advisory it comes from. They are
//! grouped by the RFCs they come from: [`jose`] (RFC 8725, 7515, 7518, 7519), [`http`] (RFC
//! 6750, 9110, 9112, 9113) and [`paths`] (RFC 3986 and the classic bypass shapes).
//!
//! Routes for all of them: `/public/**` needs nothing, `/admin/**` needs the `admin` scope,
//! everything else (the default) needs a valid token. The good token holds only `read`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;

use crate::support::{read, Stack, TestKey};

mod http;
mod jose;
mod paths;

const ROUTES: &str = "routes:
  - { path: /public/**, auth: none }
  - { path: /admin/**, scopes: [admin] }
";

/// An issuer publishing an RSA key (`rsa-a`, which signs the good token) and two EC keys
/// (`ec-p256`, `ec-p384`), an echo upstream, and the proxy between them with [`ROUTES`].
async fn gate() -> Stack {
    gate_with("").await
}

/// As [`gate`], with `extra` configuration added after the routes (limits, paths...).
async fn gate_with(extra: &str) -> Stack {
    Stack::builder()
        .keys(vec![
            TestKey::load("rsa-a", "rsa-a", Algorithm::RS256),
            TestKey::load("ec-p256", "ec-p256", Algorithm::ES256),
            TestKey::load("ec-p384", "ec-p384", Algorithm::ES384),
        ])
        .routes(ROUTES)
        .extra(extra)
        .start()
        .await
}

/// What the attack tests ask of a [`Stack`] built by [`gate`].
trait Attack {
    /// A token signed by the RSA key over exactly this header and claims text.
    fn sign_text(&self, header: &str, claims: &str) -> String;
    /// The good claims as JSON text, with `members` (raw JSON text) added at the end.
    fn claims_text_plus(&self, members: &str) -> String;
    /// Sends `token` on a route that needs one and checks the verdict: the status, the error
    /// description containing `needle`, and the upstream's count (one more only for a 200).
    async fn verdict(&self, label: &str, token: &str, status: u16, needle: &str) -> Vec<String>;
    /// Runs every row and fails once, listing every row that went wrong.
    async fn verdicts(&self, rows: &[(String, String, u16, &str)]);
    /// The proxy still forwards an ordinary valid request, with the token's identity.
    async fn assert_still_serving(&self);
}

impl Attack for Stack {
    fn sign_text(&self, header: &str, claims: &str) -> String {
        sign_text(header, claims, &self.key)
    }

    fn claims_text_plus(&self, members: &str) -> String {
        let good = self.issuer.claims().to_string();
        let open = good.strip_suffix('}').expect("claims are an object");
        format!("{open},{members}}}")
    }

    async fn verdict(&self, label: &str, token: &str, status: u16, needle: &str) -> Vec<String> {
        let before = self.upstream().count();
        let r = self
            .get_headers(
                "/api/resource",
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await;
        let (got, challenge, body) = read(r).await;
        let after = self.upstream().count();
        let mut problems = Vec::new();
        if got != status {
            problems.push(format!("status {got} (want {status}): {body}"));
        }
        let want_count = before + usize::from(status == 200);
        if after != want_count {
            problems.push(format!("upstream saw {} requests", after - before));
        }
        let description = body["error_description"].as_str().unwrap_or("");
        if status != 200 && !description.contains(needle) {
            problems.push(format!("description {description:?} lacks {needle:?}"));
        }
        if status == 401 {
            let challenge = challenge.unwrap_or_default();
            if !challenge.contains("error=\"invalid_token\"") {
                problems.push(format!("challenge {challenge:?}"));
            }
        }
        // (A 200 is the echo upstream's answer, which shows the Authorization it was sent.)
        if status != 200 && token.len() > 8 && body.to_string().contains(token) {
            problems.push("the token was echoed".into());
        }
        problems
            .into_iter()
            .map(|p| format!("{label}: {p}"))
            .collect()
    }

    async fn verdicts(&self, rows: &[(String, String, u16, &str)]) {
        let mut failures = Vec::new();
        for (label, token, status, needle) in rows {
            failures.extend(self.verdict(label, token, *status, needle).await);
        }
        assert!(
            failures.is_empty(),
            "{} of {} rows failed:\n{}",
            failures.len(),
            rows.len(),
            failures.join("\n")
        );
    }

    async fn assert_still_serving(&self) {
        let before = self.upstream().count();
        let r = self
            .get_headers(
                "/api/after",
                &[("authorization", &format!("Bearer {}", self.token()))],
            )
            .await;
        assert_eq!(r.status(), 200, "the proxy stopped serving valid requests");
        assert_eq!(self.upstream().count(), before + 1);
        let seen = self.last();
        assert_eq!(seen.target, "/api/after");
        assert_eq!(seen.header("x-auth-subject"), Some("user-1"));
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs exactly this header and claims text (no re-serialisation) with `key`.
fn sign_text(header: &str, claims: &str, key: &TestKey) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key.encoding, key.alg).expect("signing");
    format!("{input}.{signature}")
}

/// Replaces a token's signature segment with these bytes.
fn with_signature(token: &str, signature: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').expect("three segments");
    format!("{input}.{}", b64(signature))
}

/// The signature bytes of a token.
fn signature_of(token: &str) -> Vec<u8> {
    let (_, signature) = token.rsplit_once('.').expect("three segments");
    URL_SAFE_NO_PAD
        .decode(signature)
        .expect("the signature is base64url")
}

fn row(
    label: impl Into<String>,
    token: String,
    status: u16,
    needle: &str,
) -> (String, String, u16, &str) {
    (label.into(), token, status, needle)
}
