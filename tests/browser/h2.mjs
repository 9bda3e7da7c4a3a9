// Opens <count> EventSources to the demo at <origin> from one page in headless Chromium and
// reports how many messages each received, the protocol and connection of the page and of
// each stream's response (from the DevTools protocol), and the answer to a same-origin login.
//
//   node h2.mjs <origin> <count> <wait ms>
//
// It waits until every source has 3 messages or <wait ms> have passed. Chromium runs with
// --ignore-certificate-errors: the test's certificate is self-signed. Prints one JSON line
// and exits 0, or prints the failure and exits 1. Run by tests/integration/http2.rs (which
// starts the demo); needs `npm ci` here and Debian's chromium (PIKKU_CHROMIUM overrides
// /usr/bin/chromium).

import { chromium } from 'playwright-core';

const [origin, countArg, waitArg] = process.argv.slice(2);
const count = Number(countArg);
const waitMs = Number(waitArg);
if (!origin || !(count > 0) || !(waitMs > 0)) {
  console.error('usage: node h2.mjs <origin> <count> <wait ms>');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.PIKKU_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--ignore-certificate-errors',
  ],
  timeout: 30_000,
});

let exitCode = 0;
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const responses = [];
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  cdp.on('Network.responseReceived', ({ response }) => responses.push({
    url: response.url, status: response.status, protocol: response.protocol,
    connectionId: response.connectionId,
  }));

  const res = await page.goto(`${origin}/health/ready`);
  if (!res || res.status() !== 200) throw new Error(`GET ${origin}/health/ready: ${res && res.status()}`);
  // A same-origin POST: the browser sends `Origin`, and over HTTP/2 no `Host`.
  const login = await page.evaluate(async () => {
    const r = await fetch('/auth/login', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ userId: 'browser' }),
    });
    return { status: r.status, body: await r.text() };
  });
  await page.evaluate((n) => {
    window.counts = new Array(n).fill(0);
    window.sources = [];
    for (let i = 0; i < n; i++) {
      const es = new EventSource(`/stream/updates?interval_ms=${100 + i}`);
      es.onmessage = () => { window.counts[i] += 1; };
      window.sources.push(es);
    }
  }, count);
  try {
    await page.waitForFunction(() => window.counts.every((c) => c >= 3), null, { timeout: waitMs, polling: 100 });
  } catch {
    // Reported below: the test decides what is enough.
  }
  const counts = await page.evaluate(() => window.counts);
  await page.evaluate(() => window.sources.forEach((s) => s.close()));
  const pageResponse = responses.find((r) => r.url.endsWith('/health/ready'));
  console.log(JSON.stringify({
    counts,
    login,
    page: pageResponse,
    streams: responses.filter((r) => r.url.includes('/stream/updates')),
  }));
} catch (e) {
  console.error(`EventSource check failed: ${e && e.stack ? e.stack : e}`);
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
