// Loads a Pikku docs page in headless Chromium, checks the operations are listed, presses
// "Connect" on one stream operation and waits for live events.
//
//   node docs.mjs <docs page URL> <operationId> [<param>=<value>...] [--send=<operationId>]
//                 [--send-prefilled=<operationId>] [--no-connect]
//
// With --send, it also presses "Send" on that (JSON) operation and reports the answer shown.
// With --send-prefilled, it reports the body "Try it" pre-filled for that operation, presses
// "Send" without editing it, and reports the answer. It always reports the doc-comment text
// of each operation with the code spans and the HTML it rendered. With --no-connect, it does
// not connect to the stream operation (the operationId is then only checked to be listed).
// Prints one JSON line with what it saw and exits 0, or prints the failure and exits 1.
// Run by tests/integration/openapi.rs (which starts the server); needs `npm ci` here and
// Debian's chromium (PIKKU_CHROMIUM overrides /usr/bin/chromium).

import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
const flag = (name) => args.filter((a) => a.startsWith(`--${name}=`)).map((a) => a.slice(name.length + 3))[0];
const send = flag('send');
const sendPrefilled = flag('send-prefilled');
const connect = !args.includes('--no-connect');
const [url, operationId, ...params] = args.filter((a) => !a.startsWith('--'));
if (!url || !operationId) {
  console.error('usage: node docs.mjs <docs page URL> <operationId> [name=value...]');
  process.exit(2);
}

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
  const page = await browser.newPage();
  page.setDefaultTimeout(10_000);
  const problems = [];
  const requests = [];
  const origin = new URL(url).origin;
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('request', (r) => {
    requests.push(r.url());
    if (new URL(r.url()).origin !== origin) problems.push(`request to another origin: ${r.url()}`);
  });

  const res = await page.goto(url);
  if (!res || res.status() !== 200) throw new Error(`GET ${url}: ${res && res.status()}`);

  // The operations, grouped by tag.
  const operations = await page.$$eval('section.tag', (sections) => sections.map((s) => ({
    tag: s.dataset.tag,
    operations: [...s.querySelectorAll('[data-operation-id]')].map((o) => ({
      operationId: o.dataset.operationId, method: o.dataset.method, path: o.dataset.path,
      visibleText: o.querySelector('summary').innerText,
    })),
  })));
  const schemas = await page.$$eval('.schema-def h3', (hs) => hs.map((h) => h.textContent));
  // Doc comments, rendered from their Markdown.
  const descriptions = await page.$$eval('[data-operation-id] .body > .md', (ds) => ds.map((d) => ({
    operationId: d.closest('[data-operation-id]').dataset.operationId,
    text: d.textContent,
    code: [...d.querySelectorAll('code')].map((c) => c.textContent),
    html: d.innerHTML,
  })));

  // Connect to the stream and wait for three events.
  const op = page.locator(`[data-operation-id="${operationId}"]`);
  await op.waitFor();
  for (const p of params) {
    const [name, value] = p.split('=');
    await op.locator(`input[name="${name}"]`).fill(value);
  }
  let events = null;
  let status = null;
  let afterDisconnect = null;
  if (connect) {
    await op.getByRole('button', { name: 'Connect', exact: true }).click();
    const items = op.locator('ol.events li[data-event="message"] .data');
    await items.nth(2).waitFor({ timeout: 15_000 });
    events = (await items.allTextContents()).map((t) => JSON.parse(t));
    status = await op.locator('.status').textContent();
    await op.getByRole('button', { name: 'Disconnect', exact: true }).click();
    afterDisconnect = await op.locator('.status').textContent();
  }
  let sent = null;
  if (send) {
    const sendOp = page.locator(`[data-operation-id="${send}"]`);
    await sendOp.getByRole('button', { name: 'Send', exact: true }).click();
    await sendOp.locator('pre.out:not([hidden])').waitFor();
    sent = {
      status: await sendOp.locator('.status').textContent(),
      body: JSON.parse(await sendOp.locator('pre.out').textContent()),
    };
  }
  let prefilled = null;
  if (sendPrefilled) {
    const o = page.locator(`[data-operation-id="${sendPrefilled}"]`);
    const body = await o.locator('textarea[name="__body"]').inputValue();
    await o.getByRole('button', { name: 'Send', exact: true }).click();
    await o.locator('pre.out:not([hidden])').waitFor();
    prefilled = {
      body: JSON.parse(body),
      status: await o.locator('.status').textContent(),
      answer: JSON.parse(await o.locator('pre.out').textContent()),
    };
  }
  if (process.env.PIKKU_DOCS_SCREENSHOT) {
    await page.screenshot({ path: process.env.PIKKU_DOCS_SCREENSHOT, fullPage: true });
  }
  if (problems.length) throw new Error(problems.join('\n'));
  console.log(JSON.stringify({
    title: await page.title(), operations, schemas, descriptions, events, status, afterDisconnect, sent,
    prefilled, requests,
  }));
} catch (e) {
  console.error(`docs page check failed: ${e && e.stack ? e.stack : e}`);
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
