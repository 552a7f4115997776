// Runs fetch() calls inside a real page in Debian's headless Chromium and prints what the
// page's JavaScript could read of each answer. Used by tests/it/browser.rs.
//
//   node tests/browser/cors.mjs '<plan JSON>'     (or the plan on stdin, or '-' for stdin)
//
// The plan:
//   { "page": "http://127.0.0.1:PORT/",            the page to open (the fetches' origin)
//     "timeout_ms": 10000,                         per fetch (optional)
//     "fetches": [ { "url": "...", "method": "GET", "headers": {"Authorization": "..."},
//                    "credentials": "omit" | "include", "body": "..." (optional) } ] }
//
// Output: one JSON object per fetch, one a line, in plan order:
//   { "index": 0, "url": "...", "resolved": true, "status": 200, "body": "...",
//     "headers": { "lower-case-name": "value", ... }, "console": [ ... ] }
//   { "index": 1, "url": "...", "resolved": false, "error": "TypeError: Failed to fetch",
//     "console": [ "Access to fetch at ... has been blocked by CORS policy: ..." ] }
// `headers` holds exactly what iterating `response.headers` gives the page; `console` holds
// the page's console messages while that fetch ran (Chromium explains a CORS refusal there).
//
// Exit status: 0 when every fetch was run (whatever its outcome), 1 on a bad plan or a page
// that does not load, 2 when the node modules are missing, 3 when Chromium is missing.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const INSTALL = 'run .ci/install-browser (it installs Debian\'s chromium and runs npm ci in tests/browser)';
const CHROMIUM = process.env.TOKENGATE_CHROMIUM || '/usr/bin/chromium';

function die(code, message) {
  process.stderr.write(`cors.mjs: ${message}\n`);
  process.exit(code);
}

function readPlan() {
  const arg = process.argv[2];
  const text = arg === undefined || arg === '-' ? readFileSync(0, 'utf8') : arg;
  let plan;
  try {
    plan = JSON.parse(text);
  } catch (e) {
    die(1, `the plan is not JSON (${e.message}): ${text.slice(0, 200)}`);
  }
  if (typeof plan.page !== 'string' || !Array.isArray(plan.fetches)) {
    die(1, 'the plan needs "page" (a URL) and "fetches" (a list)');
  }
  for (const [i, f] of plan.fetches.entries()) {
    if (typeof f.url !== 'string') die(1, `fetch ${i} has no "url"`);
    if (f.credentials !== undefined && !['omit', 'include', 'same-origin'].includes(f.credentials)) {
      die(1, `fetch ${i}: credentials must be "omit" or "include", not ${JSON.stringify(f.credentials)}`);
    }
  }
  return plan;
}

const plan = readPlan();

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  die(2, `cannot load playwright-core from tests/browser/node_modules (${e.code || e.message}): ${INSTALL}`);
}
if (!existsSync(CHROMIUM)) {
  die(3, `Chromium is not installed at ${CHROMIUM}: ${INSTALL}`);
}

const profile = mkdtempSync(join(tmpdir(), 'tokengate-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 30000,
  });
} catch (e) {
  rmSync(profile, { recursive: true, force: true });
  die(3, `Chromium at ${CHROMIUM} did not start: ${e.message}`);
}

let status = 0;
try {
  const page = context.pages()[0] || (await context.newPage());
  let consoleLines = [];
  page.on('console', (m) => consoleLines.push(m.text()));
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));

  const loaded = await page.goto(plan.page, { waitUntil: 'load', timeout: 15000 });
  if (!loaded || loaded.status() !== 200) {
    throw new Error(`the page ${plan.page} answered ${loaded ? loaded.status() : 'nothing'}`);
  }

  for (const [index, f] of plan.fetches.entries()) {
    consoleLines = [];
    const outcome = await page.evaluate(
      async ({ f, timeoutMs }) => {
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(new DOMException('timed out', 'TimeoutError')), timeoutMs);
        try {
          const init = {
            method: f.method || 'GET',
            headers: f.headers || {},
            credentials: f.credentials || 'omit',
            mode: 'cors',
            cache: 'no-store',
            signal: abort.signal,
          };
          if (f.body !== undefined && f.body !== null) init.body = f.body;
          const response = await fetch(f.url, init);
          const headers = {};
          for (const [name, value] of response.headers) headers[name] = value;
          const body = await response.text();
          return { resolved: true, status: response.status, body, headers };
        } catch (e) {
          return { resolved: false, error: `${e.name}: ${e.message}` };
        } finally {
          clearTimeout(timer);
        }
      },
      { f, timeoutMs: plan.timeout_ms || 10000 },
    );
    // Chromium explains a refusal on the console around the time the promise rejects: wait
    // (up to 2 s) for its `net::` line, which comes last.
    for (let waited = 0; !outcome.resolved && waited < 2000; waited += 25) {
      if (consoleLines.some((l) => l.includes('net::'))) break;
      await page.waitForTimeout(25);
    }
    process.stdout.write(
      `${JSON.stringify({ index, url: f.url, ...outcome, console: consoleLines })}\n`,
    );
  }
} catch (e) {
  process.stderr.write(`cors.mjs: ${e.message}\n`);
  status = 1;
} finally {
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(status);
