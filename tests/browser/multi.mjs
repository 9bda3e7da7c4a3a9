// A merged multi-topic stream in a real browser (headless Chromium): the page's own
// EventSource reconnects across server restarts and resumes every topic from the composite id.
//
//   node multi.mjs <API base URL> <stream path> <messages wanted>
//
// Opens a page on the API's origin and an EventSource on <stream path>, then reports on
// stdout, one line each: `open` once the stream has been open for a moment, `got <n>` each
// time the count of messages grows, and finally (once <messages wanted> arrived and a second
// passed, to see any duplicate) one JSON line with every message and its lastEventId. The
// test (tests/integration/multi_topic.rs) restarts the server in between. Exits 1 on failure.
// Needs `npm ci` here and Debian's chromium (PIKKU_CHROMIUM overrides /usr/bin/chromium).

import { chromium } from 'playwright-core';

const [api, path, wantedText] = process.argv.slice(2);
const wanted = Number(wantedText);
if (!api || !path || !wanted) {
  console.error('usage: node multi.mjs <API base URL> <stream path> <messages wanted>');
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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let exitCode = 0;
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(10_000);
  const res = await page.goto(api + '/openapi.json');
  if (!res || res.status() !== 200) throw new Error(`page: ${res && res.status()}`);
  await page.evaluate((path) => {
    window.out = { opens: 0, errors: 0, messages: [] };
    const es = new EventSource(path);
    es.onopen = () => { window.out.opens += 1; };
    es.onerror = () => { window.out.errors += 1; };
    es.onmessage = (m) => {
      const data = JSON.parse(m.data);
      window.out.messages.push({ channel: data.channel, text: data.text, lastEventId: m.lastEventId });
    };
  }, path);
  const deadline = Date.now() + 60_000;
  let reported = 0;
  let opened = false;
  for (;;) {
    const out = await page.evaluate(() => window.out);
    if (!opened && out.opens > 0) {
      // Long enough for the opening id-only frame to arrive.
      await sleep(500);
      console.log('open');
      opened = true;
    }
    if (out.messages.length > reported) {
      reported = out.messages.length;
      console.log(`got ${reported}`);
    }
    if (reported >= wanted) break;
    if (Date.now() > deadline) throw new Error(`timed out: ${JSON.stringify(out)}`);
    await sleep(50);
  }
  await sleep(1000);
  console.log(JSON.stringify(await page.evaluate(() => window.out)));
} catch (e) {
  console.error(String(e && e.stack || e));
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
