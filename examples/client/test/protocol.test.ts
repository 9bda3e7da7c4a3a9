// The generated client's SSE runtime against scripted servers: what the demo cannot be made to
// send on cue (`retry:` values, error and gap events, 5xx answers, silence).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

import {
  createClient,
  PikkuGapError,
  PikkuHttpError,
  PikkuSseParser,
  PikkuStreamError,
  type PikkuGap,
  type PikkuReconnect,
  type Update,
} from '../pikku-fetch.gen.js'

/** One scripted connection: gets the request, writes the response. */
type Script = (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void

/** A server answering its nth request with `scripts[n]` (the last one repeats). */
async function scripted(scripts: Script[]) {
  const requests: { at: number; lastEventId: string | undefined }[] = []
  const server = http.createServer((req, res) => {
    const n = requests.length
    const header = req.headers['last-event-id']
    requests.push({ at: Date.now(), lastEventId: Array.isArray(header) ? header[0] : header })
    const script = scripts[Math.min(n, scripts.length - 1)]
    if (script) script(req, res, n)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    client: createClient({ baseUrl: `http://127.0.0.1:${port}` }),
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

const sse = (res: http.ServerResponse, body: string, end = true) => {
  res.writeHead(200, { 'content-type': 'text/event-stream' })
  res.write(body)
  if (end) res.end()
}

const update = (count: number): string =>
  JSON.stringify({ timestamp: 't', data: { count, message: 'm' } } satisfies Update)

test('the parser follows the WHATWG rules, across chunk boundaries', () => {
  const p = new PikkuSseParser()
  const bytes = new TextEncoder().encode('\uFEFFdata: é\r\ndata:two\r\rid: 7\rdata: x\n\n')
  const events = []
  for (const b of bytes) events.push(...p.push(new Uint8Array([b]))) // one byte at a time
  assert.deepEqual(events, [
    { event: 'message', data: 'é\ntwo', lastEventId: undefined },
    { event: 'message', data: 'x', lastEventId: '7' },
  ])
  // Comments, unknown fields, a NUL in an id, bad retry values are ignored; `data` alone
  // dispatches an empty data buffer... which is not dispatched; an unfinished event neither.
  const q = new PikkuSseParser('3')
  const out = q.push(': ping\nfoo: bar\nid: a\0b\nretry: 1x\nevent: tick\ndata\n\nretry: 250\n\nevent: e\ndata: 1\n\ndata: cut')
  assert.deepEqual(out, [{ event: 'e', data: '1', lastEventId: '3' }])
  assert.equal(q.retry, 250)
  assert.deepEqual(q.push('\n\n'), [{ event: 'message', data: 'cut', lastEventId: '3' }])
})

test('reconnects after the retry the server sent, with Last-Event-ID', async () => {
  const s = await scripted([
    (_, res) => sse(res, 'retry: 50\n\nid: 1\ndata: ' + update(1) + '\n\n'),
    (_, res) => sse(res, 'data: ' + update(2) + '\n\nretry: 0\n\n'),
    (_, res) => sse(res, 'id: 3\ndata: ' + update(3) + '\n\n', false),
  ])
  try {
    const reconnects: PikkuReconnect[] = []
    const stream = s.client.streamUpdates({}, { onReconnect: (r) => reconnects.push(r) })
    const counts: number[] = []
    for await (const u of stream) {
      counts.push(u.data.count)
      if (counts.length === 3) break
    }
    assert.deepEqual(counts, [1, 2, 3])
    assert.deepEqual(
      s.requests.map((r) => r.lastEventId),
      [undefined, '1', '1'],
    )
    const [first, second] = s.requests.map((r) => r.at)
    // The delays the client chose are checked exactly below (onReconnect); wall-clock gaps only
    // from below, as a loaded box stretches them.
    assert.ok(second! - first! >= 45, `retry: 50 waited for (${second! - first!} ms)`)
    assert.deepEqual(
      reconnects.map((r) => [r.reason, r.delayMs, r.lastEventId]),
      [
        ['ended', 50, '1'],
        ['ended', 0, '1'],
      ],
    )
    assert.equal(stream.lastEventId, '3')
  } finally {
    await s.close()
  }
})

test('event: error throws a PikkuStreamError, or goes to onError and the stream goes on', async () => {
  const body = 'data: ' + update(1) + '\n\nevent: error\ndata: {"error":"internal","message":"boom"}\n\ndata: ' + update(2) + '\n\n'
  const s = await scripted([(_, res) => sse(res, body, false)])
  try {
    const seen: number[] = []
    await assert.rejects(
      (async () => {
        for await (const u of s.client.streamUpdates()) seen.push(u.data.count)
      })(),
      (e: unknown) => e instanceof PikkuStreamError && e.body.error === 'internal' && e.body.message === 'boom',
    )
    assert.deepEqual(seen, [1])
    const errors: string[] = []
    const counts: number[] = []
    for await (const u of s.client.streamUpdates({}, { onError: (e) => errors.push(e.body.message) })) {
      counts.push(u.data.count)
      if (counts.length === 2) break
    }
    assert.deepEqual([counts, errors], [[1, 2], ['boom']])
  } finally {
    await s.close()
  }
})

test('event: gap throws a PikkuGapError unless onGap takes it', async () => {
  const body = 'event: gap\ndata: {"reason":"expired","missed":5}\n\nid: 9\ndata: ' + update(9) + '\n\n'
  const s = await scripted([(_, res) => sse(res, body, false)])
  try {
    await assert.rejects(
      (async () => {
        for await (const _ of s.client.streamUpdates({}, { lastEventId: '2' })) assert.fail('no item before the gap')
      })(),
      (e: unknown) => e instanceof PikkuGapError && e.gap.reason === 'expired' && e.gap.missed === 5,
    )
    const gaps: PikkuGap[] = []
    for await (const u of s.client.streamUpdates({}, { lastEventId: '2', onGap: (g) => gaps.push(g) })) {
      assert.equal(u.data.count, 9)
      break
    }
    assert.deepEqual(gaps, [{ reason: 'expired', missed: 5 }])
  } finally {
    await s.close()
  }
})

test('shutdown and close events are reconnect hints, not items', async () => {
  const s = await scripted([
    (_, res) => sse(res, 'id: 1\ndata: ' + update(1) + '\n\nevent: shutdown\nretry: 20\ndata: {"reason":"server shutting down"}\n\n'),
    (_, res) => sse(res, 'event: close\nretry: 0\ndata: {"reason":"maximum stream lifetime reached"}\n\n'),
    (_, res) => sse(res, 'data: ' + update(2) + '\n\n', false),
  ])
  try {
    const reasons: string[] = []
    const counts: number[] = []
    for await (const u of s.client.streamUpdates({}, { onReconnect: (r) => reasons.push(`${r.reason}:${r.delayMs}`) })) {
      counts.push(u.data.count)
      if (counts.length === 2) break
    }
    assert.deepEqual(counts, [1, 2])
    assert.deepEqual(reasons, ['shutdown:20', 'close:0'])
    assert.deepEqual(s.requests.map((r) => r.lastEventId), [undefined, '1', '1'])
  } finally {
    await s.close()
  }
})

test('session_end ends the stream with a PikkuStreamError, even with onError, and does not reconnect', async () => {
  const body = 'data: ' + update(1) + '\n\nevent: session_end\ndata: {"error":"session_expired","message":"the session expired; log in again"}\n\n'
  const s = await scripted([(_, res) => sse(res, body, false)])
  try {
    const seen: number[] = []
    const errors: string[] = []
    await assert.rejects(
      (async () => {
        for await (const u of s.client.streamUpdates({}, { onError: (e) => errors.push(e.body.error) })) seen.push(u.data.count)
      })(),
      (e: unknown) => e instanceof PikkuStreamError && e.body.error === 'session_expired',
    )
    assert.deepEqual([seen, errors, s.requests.length], [[1], [], 1])
  } finally {
    await s.close()
  }
})

test('4xx rejects with the server error body; 503 with Retry-After is retried', async () => {
  const s = await scripted([
    (_, res) => {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' })
      res.end('{"error":"hub_unavailable","message":"down","status":503}')
    },
    (_, res) => sse(res, 'data: ' + update(1) + '\n\n', false),
    (_, res) => {
      res.writeHead(403, { 'content-type': 'application/json' })
      res.end('{"error":"forbidden","message":"not yours","status":403}')
    },
  ])
  try {
    const reasons: string[] = []
    for await (const u of s.client.streamUpdates({}, { retryMs: 10, onReconnect: (r) => reasons.push(r.reason) })) {
      assert.equal(u.data.count, 1)
      break
    }
    assert.deepEqual(reasons, ['http'])
    await assert.rejects(
      (async () => {
        for await (const _ of s.client.streamUpdates()) assert.fail('no items')
      })(),
      (e: unknown) => e instanceof PikkuHttpError && e.status === 403 && e.body.error === 'forbidden',
    )
    await assert.rejects(s.client.ready(), (e: unknown) => e instanceof PikkuHttpError && e.status === 403)
  } finally {
    await s.close()
  }
})

test('heartbeats keep a quiet stream; silence past the timeout reconnects', async () => {
  const timers: ReturnType<typeof setInterval>[] = []
  const s = await scripted([
    (_, res) => {
      // An item, 600 ms of pings only (every 40 ms), another item, then silence.
      sse(res, 'data: ' + update(1) + '\n\n', false)
      const ping = setInterval(() => res.write(': ping\n\n'), 40)
      timers.push(ping)
      timers.push(
        setTimeout(() => {
          clearInterval(ping)
          res.write('data: ' + update(2) + '\n\n')
        }, 600),
      )
    },
    (_, res) => sse(res, 'data: ' + update(3) + '\n\n', false),
  ])
  try {
    const reasons: string[] = []
    const stream = s.client.streamUpdates({}, {
      heartbeatTimeoutMs: 200,
      retryMs: 0,
      onReconnect: (r) => reasons.push(r.reason),
    })
    const counts: number[] = []
    for await (const u of stream) {
      counts.push(u.data.count)
      if (u.data.count === 2) assert.equal(s.requests.length, 1, 'no reconnection while pings arrive')
      if (counts.length === 3) break
    }
    assert.deepEqual(counts, [1, 2, 3])
    assert.deepEqual(reasons, ['heartbeat-timeout'])
  } finally {
    for (const t of timers) clearInterval(t)
    await s.close()
  }
})

test('an abort signal ends the iteration quietly and aborts the request', async () => {
  const s = await scripted([(_, res) => sse(res, 'data: ' + update(1) + '\n\n', false)])
  try {
    const controller = new AbortController()
    const counts: number[] = []
    setTimeout(() => controller.abort(), 100)
    for await (const u of s.client.streamUpdates({}, { signal: controller.signal })) counts.push(u.data.count)
    assert.deepEqual(counts, [1])
    // A JSON call rejects with the abort, as fetch does.
    await assert.rejects(s.client.ready({ signal: controller.signal }), (e: unknown) => (e as Error).name === 'AbortError')
  } finally {
    await s.close()
  }
})
