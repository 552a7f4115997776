// The official MCP TypeScript SDK client (@modelcontextprotocol/sdk, the exact version in
// package-lock.json) against an MCP server behind tokengate, for tests/it/mcp.rs.
//
// It authorizes the way the SDK does for a machine client: its own ClientCredentialsProvider
// (client_credentials, client_secret_basic) driven by the SDK's auth(): the first request
// gets a 401, the SDK reads `resource_metadata` and `scope` from WWW-Authenticate, fetches the
// protected resource metadata (RFC 9728), then the authorization server's metadata (RFC 8414 /
// OIDC discovery), asks the token endpoint with resource= (RFC 8707) and retries.
//
//   MCP_URL         the MCP endpoint through tokengate (http://127.0.0.1:PORT/mcp)
//   ISSUER          the authorization server the client's credentials belong to
//   CLIENT_ID, CLIENT_SECRET
//   SCOPE           the scope the client asks for (see below); none when unset
//   DEBUG_MCP       set: every request and answer on stderr
//   ACTION          "tools" (default): list the tools, call add(2, 3) and whoami();
//                   "slow": call slow(SLOW_SECONDS) and time it (SSE response stream)
//   SLOW_SECONDS    default 62
//
// Prints one JSON line: {"requests": [{method, url, status, www_authenticate}], ...results},
// every HTTP request the SDK made, in order. Exits 1 with {"error": ...} on any failure.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

const requests = [];
const recordingFetch = async (input, init) => {
  const response = await fetch(input, init);
  if (process.env.DEBUG_MCP) {
    const streaming = (response.headers.get('content-type') ?? '').startsWith('text/event-stream');
    const body = streaming ? '(event stream)' : await response.clone().text();
    console.error(init?.method ?? 'GET', String(input), response.status, body);
  }
  requests.push({
    method: init?.method ?? 'GET',
    url: String(input instanceof Request ? input.url : input),
    status: response.status,
    www_authenticate: response.headers.get('www-authenticate'),
    content_type: response.headers.get('content-type'),
    mcp_session_id: response.headers.get('mcp-session-id'),
  });
  return response;
};

async function main() {
  const provider = new ClientCredentialsProvider({
    clientId: process.env.CLIENT_ID,
    clientSecret: process.env.CLIENT_SECRET,
    expectedIssuer: process.env.ISSUER,
    clientName: 'tokengate-mcp-test',
    // The SDK's ClientCredentialsProvider asks the token endpoint for this scope (its client
    // metadata's), not for the challenge's `scope` (auth.js fetchToken): set it to what the
    // 401 names. Without it the token has no scope, and tokengate answers 403.
    scope: process.env.SCOPE || undefined,
  });
  const transport = new StreamableHTTPClientTransport(new URL(process.env.MCP_URL), {
    authProvider: provider,
    fetch: recordingFetch,
  });
  const client = new Client({ name: 'tokengate-mcp-test', version: '1.0.0' }, { capabilities: {} });
  await client.connect(transport);
  const out = { session_id: transport.sessionId ?? null };
  if ((process.env.ACTION ?? 'tools') === 'slow') {
    const seconds = Number(process.env.SLOW_SECONDS ?? 62);
    const progress = [];
    const started = Date.now();
    const result = await client.callTool(
      { name: 'slow', arguments: { seconds } },
      undefined,
      {
        timeout: (seconds + 60) * 1000,
        onprogress: (p) => progress.push({ at_ms: Date.now() - started, ...p }),
      },
    );
    out.slow = { elapsed_ms: Date.now() - started, progress, result };
  } else {
    const tools = await client.listTools();
    out.tools = tools.tools.map((t) => t.name).sort();
    out.add = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
    out.whoami = await client.callTool({ name: 'whoami', arguments: {} });
  }
  out.tokens = provider.tokens() ? { scope: provider.tokens().scope, token_type: provider.tokens().token_type } : null;
  out.access_token = provider.tokens()?.access_token ?? null;
  await transport.terminateSession();
  await client.close();
  out.requests = requests;
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((error) => {
  process.stdout.write(`${JSON.stringify({ error: String(error?.stack ?? error), requests })}\n`);
  process.exit(1);
});
