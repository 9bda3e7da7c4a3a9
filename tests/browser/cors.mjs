// Cross-origin use of a Pikku app from a real browser (headless Chromium).
//
//   node cors.mjs <API base URL> <allowed page port> <foreign page port>
//
// Serves one page on each loopback port (two origins other than the API's), then:
//  1. on the allowed origin: logs in with fetch (credentials: include: the cookie is set),
//     opens an EventSource with withCredentials on the user's notifications, publishes one
//     with fetch and the cookie, and reports what the EventSource received;
//  2. on the foreign origin (the cookie is in the browser too: cookies ignore ports): opens
//     the same EventSource and a public stream, and reports what they received;
//  3. on the foreign origin: submits a plain HTML form (text/plain, with the cookie) that
//     POSTs to the notifications, and reports the answer the browser navigated to.
// Prints one JSON line with what it saw and exits 0, or prints the failure and exits 1.
// Run by tests/integration/security.rs (which starts the demo); needs `npm ci` here and
// Debian's chromium (PIKKU_CHROMIUM overrides /usr/bin/chromium).

import http from 'node:http';
import { chromium } from 'playwright-core';

const [api, allowedPort, foreignPort] = process.argv.slice(2);
if (!api || !allowedPort || !foreignPort) {
  console.error('usage: node cors.mjs <API base URL> <allowed page port> <foreign page port>');
  process.exit(2);
}

// The page: helpers the test calls with page.evaluate.
const PAGE = `<!doctype html><meta charset="utf-8"><title>another origin</title><body><script>
const api = ${JSON.stringify(api)};
window.login = async (userId) => {
  try {
    const r = await fetch(api + '/auth/login', {
      method: 'POST', credentials: 'include',
      headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId }),
    });
    return { status: r.status };
  } catch (e) { return { error: String(e) }; }
};
window.publish = async (userId, message) => {
  try {
    const r = await fetch(api + '/users/' + userId + '/notifications', {
      method: 'POST', credentials: 'include',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ userId, type: 'info', message }),
    });
    return { status: r.status, requestId: r.headers.get('x-request-id') };
  } catch (e) { return { error: String(e) }; }
};
// Opens an EventSource with credentials; optionally publishes once it is open. Resolves with
// the messages received within waitMs (or once 'count' arrived).
window.listen = (path, { count = 1, waitMs = 4000, publish } = {}) => new Promise((resolve) => {
  const out = { opened: false, errors: 0, messages: [] };
  const es = new EventSource(api + path, { withCredentials: true });
  const done = () => { es.close(); resolve(out); };
  es.onopen = async () => {
    out.opened = true;
    if (publish) out.published = await window.publish(publish.userId, publish.message);
  };
  es.onmessage = (m) => {
    out.messages.push(JSON.parse(m.data));
    if (out.messages.length >= count) done();
  };
  es.onerror = () => { out.errors += 1; if (es.readyState === EventSource.CLOSED) done(); };
  setTimeout(done, waitMs);
});
window.forgeForm = (userId) => {
  const form = document.createElement('form');
  form.method = 'POST';
  form.action = api + '/users/' + userId + '/notifications';
  form.enctype = 'text/plain';
  const input = document.createElement('input');
  input.name = '{"userId":"' + userId + '","type":"forged","message":"from a form","x":"';
  input.value = '"}';
  form.append(input);
  document.body.append(form);
  form.submit();
};
</script></body>`;

const servers = [allowedPort, foreignPort].map((port) => new Promise((resolve, reject) => {
  const srv = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(PAGE);
  });
  srv.once('error', reject);
  srv.listen(Number(port), '127.0.0.1', () => resolve(srv));
}));
const pageServers = await Promise.all(servers);

const browser = await chromium.launch({
  executablePath: process.env.PIKKU_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  timeout: 30_000,
});

let exitCode = 0;
try {
  const context = await browser.newContext();
  const consoleErrors = [];
  const open = async (port) => {
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    const res = await page.goto(`http://127.0.0.1:${port}/`);
    if (!res || res.status() !== 200) throw new Error(`page on port ${port}: ${res && res.status()}`);
    return page;
  };

  // 1. The allowed origin.
  const allowed = await open(allowedPort);
  const allowedLogin = await allowed.evaluate(() => window.login('alice'));
  const cookies = (await context.cookies(api)).map((c) => ({ name: c.name, sameSite: c.sameSite, secure: c.secure }));
  const allowedStream = await allowed.evaluate(() => window.listen('/users/alice/notifications', {
    publish: { userId: 'alice', message: 'from the allowed page' },
  }));

  // 2. The foreign origin: same browser, same cookie, not allowed.
  const foreign = await open(foreignPort);
  const foreignLogin = await foreign.evaluate(() => window.login('mallory'));
  const foreignStream = await foreign.evaluate(() => window.listen('/users/alice/notifications', { waitMs: 2000 }));
  const foreignPublic = await foreign.evaluate(() => window.listen('/stream/updates?interval_ms=50', { waitMs: 2000 }));

  // 3. A plain form POST from the foreign origin, with the cookie.
  const [formResponse] = await Promise.all([
    foreign.waitForNavigation(),
    foreign.evaluate(() => window.forgeForm('alice')),
  ]);
  const form = { status: formResponse.status(), body: JSON.parse(await formResponse.text()) };

  console.log(JSON.stringify({
    allowedLogin, cookies, allowedStream, foreignLogin, foreignStream, foreignPublic, form,
    consoleErrors,
  }));
} catch (e) {
  console.error(e && e.stack ? e.stack : String(e));
  exitCode = 1;
} finally {
  await browser.close();
  for (const srv of pageServers) srv.close();
}
process.exit(exitCode);
