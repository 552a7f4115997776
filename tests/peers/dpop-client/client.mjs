// A real DPoP client for tokengate's tests: openid-client (the exact version in
// package-lock.json) discovers the issuer, gets a DPoP-bound access token by
// client_credentials (its DPoP handle signs the proofs, ES256 key made here), then calls a
// resource through tokengate with fetchProtectedResource, which retries once when the
// resource answers 401 `WWW-Authenticate: DPoP error="use_dpop_nonce"` (RFC 9449 §9).
//
// Configured by environment variables:
//   ISSUER          the authorization server (http allowed: the tests run on 127.0.0.1)
//   CLIENT_ID, CLIENT_SECRET   client_secret_basic credentials
//   SCOPE           the scope to ask for (default: read)
//   RESOURCE_URL    the URL to call (through tokengate)
//   METHOD          default GET
//
// Prints one JSON line and exits 0 when the exchange happened, whatever the status:
//   {"token_type", "access_token", "status", "body", "attempts": [status of each request
//    to RESOURCE_URL], "nonces": [DPoP-Nonce of each answer, or null]}
// On a failure before the resource answers (discovery, token request), prints
// {"error": "..."} and exits 1.
import * as client from 'openid-client';

const need = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

async function main() {
  const issuer = new URL(need('ISSUER'));
  const resourceUrl = new URL(need('RESOURCE_URL'));
  const method = process.env.METHOD ?? 'GET';

  // Every request the client makes to the resource, as the resource answered it.
  const attempts = [];
  const nonces = [];
  const config = await client.discovery(
    issuer,
    need('CLIENT_ID'),
    need('CLIENT_SECRET'),
    client.ClientSecretBasic(need('CLIENT_SECRET')),
    { execute: [client.allowInsecureRequests] },
  );
  config[client.customFetch] = async (url, options) => {
    const response = await fetch(url, options);
    if (new URL(url).href === resourceUrl.href) {
      attempts.push(response.status);
      nonces.push(response.headers.get('dpop-nonce'));
    }
    return response;
  };

  const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
  const tokens = await client.clientCredentialsGrant(
    config,
    { scope: process.env.SCOPE ?? 'read' },
    { DPoP },
  );

  let status;
  let body;
  try {
    const response = await client.fetchProtectedResource(
      config,
      tokens.access_token,
      resourceUrl,
      method,
      undefined,
      undefined,
      { DPoP },
    );
    status = response.status;
    body = await response.text();
  } catch (error) {
    // A refusal with a challenge (any 401, or a second use_dpop_nonce) is thrown with the
    // response: report it like any other answer.
    if (!error?.cause?.response && !error?.response) throw error;
    const response = error.response ?? error.cause.response;
    status = response.status;
    body = await response.text().catch(() => '');
  }
  let parsed;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = body;
  }
  process.stdout.write(`${JSON.stringify({
    token_type: tokens.token_type,
    access_token: tokens.access_token,
    status,
    body: parsed,
    attempts,
    nonces,
  })}\n`);
}

main().catch((error) => {
  process.stdout.write(`${JSON.stringify({ error: `${error?.name}: ${error?.message}`, code: error?.code, cause: `${error?.cause?.message ?? error?.cause ?? ''}` })}\n`);
  process.exit(1);
});
