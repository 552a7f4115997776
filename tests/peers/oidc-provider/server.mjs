// A real OAuth 2.0 authorization server for tokengate's tests: oidc-provider (the exact
// version in package-lock.json) on 127.0.0.1, configured by environment variables.
//
//   PORT            port to listen on; 0 (default) picks one
//   AUDIENCE        the resource server's audience, and tokengate's client_id (so RFC 9701
//                   answers, whose aud oidc-provider sets to the token's aud, name it);
//                   default api://tokengate
//   RS_SECRET       tokengate's client secret (client_secret_basic and _post clients);
//                   default tokengate-secret
//   APP_SECRET      the secret of client `app` (client_credentials); default app-secret
//   ACCESS_TOKEN_TTL  access token lifetime in seconds; default 600
//
// Prints one JSON line when ready: {"issuer": "http://127.0.0.1:PORT", "port": PORT}.
// Clients:
//   AUDIENCE (client_secret_basic) and `${AUDIENCE}-post` (client_secret_post): tokengate as
//     resource server; may introspect (RFC 7662) and, with Accept
//     application/token-introspection+jwt, get RS256-signed answers (RFC 9701).
//   app: client_credentials for the scopes read, write and admin; tokens are opaque and
//     carry aud AUDIENCE (resource indicators, RFC 8707). It may revoke its tokens (RFC 7009).
// MCP (tests/it/mcp.rs), only when MCP_RESOURCE is set:
//   MCP_RESOURCE    an MCP server's resource identifier (RFC 8707 / RFC 9728, e.g.
//                   http://127.0.0.1:PORT/mcp): a second resource server whose access tokens
//                   are JWTs (RFC 9068, RS256) with aud MCP_RESOURCE
//   MCP_SCOPES      the scopes it knows; default "mcp:tools mcp:admin"
//   client `mcp-client` (secret MCP_CLIENT_SECRET, default mcp-client-secret):
//     client_credentials (client_secret_basic) for MCP_SCOPES, asking with resource=MCP_RESOURCE
// Test hooks: GET /_test/counts answers {"introspection": N} (introspection requests so far).
//
// Sender-constrained tokens (tokengate's DPoP and mTLS tests), each off unless set; unset,
// the provider behaves as above:
//   ACCESS_TOKEN_FORMAT  `jwt`: the tokens for AUDIENCE are RFC 9068 JWTs (typ at+jwt,
//                   RS256 with the provider's key, aud AUDIENCE) instead of opaque, so
//                   tokengate verifies them locally and reads their `cnf`.
//   DPOP            `1`: features.dPoP on explicitly (9.x has it on by default; the switch
//                   keeps the tests independent of that default): a token request with a
//                   DPoP proof gets a DPoP-bound token (token_type DPoP, cnf.jkt).
//   MTLS            `1`: features.mTLS with certificateBoundAccessTokens and
//                   selfSignedTlsClientAuth, and a second, HTTPS listener (same provider) that
//                   asks for a client certificate without verifying its chain
//                   (self-signed certificates are the point of self_signed_tls_client_auth).
//                   Needs MTLS_SERVER_CERT and MTLS_SERVER_KEY (PEM files: the listener's
//                   certificate; node cannot make one itself) and MTLS_CLIENT_CERT (PEM file:
//                   the certificate of client `app-mtls`, registered as its JWK with x5c).
//                   `app-mtls` authenticates with that certificate at the HTTPS listener and
//                   gets certificate-bound tokens (cnf["x5t#S256"]). The ready line gains
//                   "mtls": "https://127.0.0.1:PORT2".
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT ?? 0);
const audience = process.env.AUDIENCE ?? 'api://tokengate';
const rsSecret = process.env.RS_SECRET ?? 'tokengate-secret';
const appSecret = process.env.APP_SECRET ?? 'app-secret';
const accessTokenTtl = Number(process.env.ACCESS_TOKEN_TTL ?? 600);
const scopes = 'read write admin';
const accessTokenFormat = process.env.ACCESS_TOKEN_FORMAT ?? 'opaque';
if (!['opaque', 'jwt'].includes(accessTokenFormat)) {
  throw new Error(`ACCESS_TOKEN_FORMAT must be opaque or jwt, not ${accessTokenFormat}`);
}
const dpop = process.env.DPOP === '1';
const mtls = process.env.MTLS === '1';

const requiredFile = (name) => {
  const path = process.env[name];
  if (!path) throw new Error(`MTLS=1 needs ${name} (a PEM file)`);
  return readFileSync(path, 'utf8');
};

// `app-mtls`: self_signed_tls_client_auth with the certificate in MTLS_CLIENT_CERT (its
// public key as a JWK whose x5c is the certificate, which is how oidc-provider matches the
// presented certificate), and certificate-bound access tokens.
const mtlsClient = () => {
  const certificate = new X509Certificate(requiredFile('MTLS_CLIENT_CERT'));
  return {
    client_id: 'app-mtls',
    token_endpoint_auth_method: 'self_signed_tls_client_auth',
    tls_client_certificate_bound_access_tokens: true,
    jwks: { keys: [{ ...certificate.publicKey.export({ format: 'jwk' }), x5c: [certificate.raw.toString('base64')] }] },
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: scopes,
  };
};
const mcpResource = process.env.MCP_RESOURCE;
const mcpScopes = process.env.MCP_SCOPES ?? 'mcp:tools mcp:admin';
const mcpClientSecret = process.env.MCP_CLIENT_SECRET ?? 'mcp-client-secret';
const mcpClients = mcpResource
  ? [{
      client_id: 'mcp-client',
      client_secret: mcpClientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: mcpScopes,
    }]
  : [];
const mcpResourceServer = {
  scope: mcpScopes,
  audience: mcpResource,
  accessTokenFormat: 'jwt',
  accessTokenTTL: accessTokenTtl,
  jwt: { sign: { alg: 'RS256' } },
};

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'peer-rs256', alg: 'RS256', use: 'sig' };

const resourceServerClient = (clientId, method) => ({
  client_id: clientId,
  client_secret: rsSecret,
  token_endpoint_auth_method: method,
  introspection_endpoint_auth_method: method,
  revocation_endpoint_auth_method: method,
  introspection_signed_response_alg: 'RS256',
  grant_types: [],
  response_types: [],
  redirect_uris: [],
});

const counts = { introspection: 0 };

const server = createServer();
server.listen(port, '127.0.0.1', () => {
  const { port: bound } = server.address();
  const issuer = `http://127.0.0.1:${bound}`;
  const provider = new Provider(issuer, {
    jwks: { keys: [signingKey] },
    clients: [
      resourceServerClient(audience, 'client_secret_basic'),
      resourceServerClient(`${audience}-post`, 'client_secret_post'),
      {
        client_id: 'app',
        client_secret: appSecret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: scopes,
      },
      ...(mtls ? [mtlsClient()] : []),
      ...mcpClients,
    ],
    scopes: mcpResource ? [...scopes.split(' '), ...mcpScopes.split(' ')] : scopes.split(' '),
    // The default list plus self_signed_tls_client_auth (for `app-mtls`) with MTLS=1.
    ...(mtls
      ? {
        clientAuthMethods: ['client_secret_basic', 'client_secret_jwt', 'client_secret_post', 'private_key_jwt', 'none', 'self_signed_tls_client_auth'],
      }
      : {}),
    ttl: { ClientCredentials: accessTokenTtl, AccessToken: accessTokenTtl },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      jwtIntrospection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (mcpResource && resource === mcpResource) return mcpResourceServer;
          if (resource !== audience) throw new Error(`unknown resource ${resource}`);
          return {
            scope: scopes,
            audience,
            accessTokenFormat,
            accessTokenTTL: accessTokenTtl,
            ...(accessTokenFormat === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
          };
        },
      },
      ...(dpop ? { dPoP: { enabled: true } } : {}),
      ...(mtls
        ? {
          mTLS: {
            enabled: true,
            certificateBoundAccessTokens: true,
            selfSignedTlsClientAuth: true,
            // The HTTPS listener's peer certificate; none on the plain HTTP listener.
            getCertificate: (ctx) => ctx.socket.getPeerX509Certificate?.(),
          },
        }
        : {}),
    },
  });
  provider.use(async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === '/_test/counts') {
      ctx.body = counts;
      return;
    }
    if (ctx.method === 'POST' && ctx.path === '/token/introspection') {
      counts.introspection += 1;
    }
    await next();
  });
  server.on('request', provider.callback());
  if (!mtls) {
    process.stdout.write(`${JSON.stringify({ issuer, port: bound })}\n`);
    return;
  }
  const tlsServer = createTlsServer({
    cert: requiredFile('MTLS_SERVER_CERT'),
    key: requiredFile('MTLS_SERVER_KEY'),
    requestCert: true,
    rejectUnauthorized: false,
  }, provider.callback());
  tlsServer.listen(0, '127.0.0.1', () => {
    const mtlsUrl = `https://127.0.0.1:${tlsServer.address().port}`;
    process.stdout.write(`${JSON.stringify({ issuer, port: bound, mtls: mtlsUrl })}\n`);
  });
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
