// The generated client against the live demo, started by tests/integration/clients.rs:
//   PIKKU_BASE_URL  the demo's base URL
//   PIKKU_DEMO_BIN  the demo binary, to start (and restart) a second instance sharing the
//                   event hub (PIKKU_EVENT_HUB=redis://..., PIKKU_EVENT_HUB_PREFIX) and
//                   the session secret (PIKKU_SESSION_SECRET), which this process inherits.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'

import {
  createClient,
  PikkuHttpError,
  setDefaultClient,
  streamUpdates,
  type Notification,
  type PikkuClient,
  type PikkuReconnect,
  type StatusUpdate,
} from '../pikku-fetch.gen.js'

function env(name: string): string {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is not set: run this through cargo test (tests/integration/clients.rs)`)
  return v
}

const BASE = env('PIKKU_BASE_URL')
const demo = createClient({ baseUrl: BASE })
let users = 0
/** A fresh user per test, so streams and topics do not meet. */
const user = () => `ts-${process.pid}-${++users}`

async function loggedIn(baseUrl: string, userId: string): Promise<PikkuClient> {
  const { token } = await demo.login({ userId })
  return createClient({ baseUrl, headers: { Authorization: `Bearer ${token}` }, retryMs: 100, maxRetryMs: 400 })
}

/** Waits until the demo's hub has `n` live subscriptions (each open stream holds one). */
async function subscriptions(n: number, client: PikkuClient = demo): Promise<void> {
  const deadline = Date.now() + 3000
  for (;;) {
    const { subscriptions } = await client.ready()
    if (subscriptions === n) return
    if (Date.now() > deadline) assert.fail(`the hub has ${subscriptions} subscriptions, expected ${n}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

test('the seed: top-level streamUpdates reads 3 updates, and break closes the connection', async () => {
  const signals: AbortSignal[] = []
  setDefaultClient(
    createClient({
      baseUrl: BASE,
      fetch: (url, init) => {
        if (init?.signal) signals.push(init.signal)
        return fetch(url, init)
      },
    }),
  )
  const counts: number[] = []
  for await (const update of streamUpdates({ interval_ms: 20 })) {
    assert.equal(update.data.message, 'Live update')
    assert.ok(!Number.isNaN(Date.parse(update.timestamp)))
    counts.push(update.data.count)
    if (counts.length === 3) break
  }
  assert.deepEqual(counts, [1, 2, 3])
  assert.equal(signals.length, 1, 'one connection')
  assert.ok(signals[0]!.aborted, 'leaving the loop aborted the request')
})

test('streamWithErrors: typed success and error items, the stream going on', async () => {
  const items: StatusUpdate[] = []
  for await (const item of demo.streamWithErrors({ interval_ms: 10 })) {
    items.push(item)
    if (items.length === 4) break
  }
  const summary = items.map((i) => (i.status === 'success' ? `ok ${i.data.call}:${i.data.value}` : `error ${i.error}`))
  assert.deepEqual(summary, ['ok 1:10', 'ok 2:20', 'error upstream timed out (call 3)', 'ok 4:40'])
})

test('getData answers JSON; getDataStream streams (realtime=true)', async () => {
  const snapshot = await demo.getData()
  assert.deepEqual(snapshot.data, { count: 0, message: 'Static snapshot' })
  const counts: number[] = []
  for await (const u of demo.getDataStream({ realtime: true, interval_ms: 10 })) {
    counts.push(u.data.count)
    if (counts.length === 2) break
  }
  assert.deepEqual(counts, [1, 2])
})

test('401, 403 and 422 reject with the server error body', async () => {
  const alice = user()
  await assert.rejects(
    async () => {
      for await (const _ of demo.streamUserNotifications({ userId: alice })) assert.fail('no items')
    },
    (e: unknown) => e instanceof PikkuHttpError && e.status === 401 && e.body.error === 'unauthorized',
  )
  const client = await loggedIn(BASE, alice)
  await assert.rejects(
    async () => {
      for await (const _ of client.streamUserNotifications({ userId: 'someone-else' })) assert.fail('no items')
    },
    (e: unknown) => e instanceof PikkuHttpError && e.status === 403 && e.body.error === 'forbidden',
  )
  await assert.rejects(
    demo.login({ userId: '../bob' }),
    (e: unknown) => e instanceof PikkuHttpError && e.status === 422 && e.body.field === 'userId',
  )
  await assert.rejects(
    demo.postNotification({ userId: alice, type: 'info', message: 'x' }),
    (e: unknown) => e instanceof PikkuHttpError && e.status === 401,
  )
})

test('notifications: resume by lastEventId loses nothing; abort ends quietly and unsubscribes', async () => {
  const alice = user()
  const client = await loggedIn(BASE, alice)
  const before = (await demo.ready()).subscriptions
  const post = (message: string) => client.postNotification({ userId: alice, type: 'info', message })

  const controller = new AbortController()
  const first = client.streamUserNotifications({ userId: alice }, { signal: controller.signal })
  const got: Notification[] = []
  const reading = (async () => {
    for await (const n of first) {
      got.push(n)
      if (got.length === 2) controller.abort() // the loop then ends without an error
    }
  })()
  await subscriptions(before + 1)
  const ids = [(await post('n1')).id, (await post('n2')).id]
  await reading
  assert.deepEqual(got.map((n) => n.message), ['n1', 'n2'])
  assert.equal(first.lastEventId, ids[1])
  await subscriptions(before) // the server saw the connection close

  // Published while nobody listens; a new stream resumes after the last id it saw.
  await post('n3')
  await post('n4')
  const rest: string[] = []
  for await (const n of client.streamUserNotifications({ userId: alice }, { lastEventId: first.lastEventId! })) {
    rest.push(n.message)
    if (rest.length === 2) break
  }
  assert.deepEqual(rest, ['n3', 'n4'])
  await subscriptions(before)
})

test('a silent stream is reconnected after the heartbeat timeout', async () => {
  const reasons: string[] = []
  const counts: number[] = []
  // One update, then nothing for a minute: the 300 ms timeout reconnects, which restarts it.
  for await (const u of demo.streamUpdates(
    { interval_ms: 60000 },
    { heartbeatTimeoutMs: 300, retryMs: 0, onReconnect: (r) => reasons.push(r.reason) },
  )) {
    counts.push(u.data.count)
    if (counts.length === 2) break
  }
  assert.deepEqual(counts, [1, 1])
  assert.deepEqual(reasons, ['heartbeat-timeout'])
})

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo
      srv.close(() => resolve(port))
    })
  })
}

/** Starts the demo binary on `port` and waits until it answers. */
async function startDemo(port: number): Promise<ChildProcess> {
  const child = spawn(env('PIKKU_DEMO_BIN'), [], {
    env: { ...process.env, PIKKU_ADDR: `127.0.0.1:${port}`, RUST_LOG: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const client = createClient({ baseUrl: `http://127.0.0.1:${port}` })
  const deadline = Date.now() + 10000
  for (;;) {
    try {
      await client.ready()
      return child
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`the demo did not start on port ${port}`, { cause: e })
      await new Promise((r) => setTimeout(r, 50))
    }
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise((r) => child.once('exit', r))
  child.kill('SIGTERM')
  await exited
}

test('a server restart: the stream reconnects with Last-Event-ID and loses nothing', async (t) => {
  assert.match(process.env.PIKKU_EVENT_HUB ?? '', /^redis:/, 'instances share a Redis event hub')
  const port = await freePort()
  let instance = await startDemo(port)
  t.after(() => stop(instance))
  const alice = user()
  const viaMain = await loggedIn(BASE, alice) // publishes through the other instance
  const viaRestarted = await loggedIn(`http://127.0.0.1:${port}`, alice)
  const post = (message: string) => viaMain.postNotification({ userId: alice, type: 'info', message })

  const reconnects: PikkuReconnect[] = []
  const stream = viaRestarted.streamUserNotifications({ userId: alice }, { onReconnect: (r) => reconnects.push(r) })
  const it = stream[Symbol.asyncIterator]()
  const next = async () => {
    const r = await it.next()
    assert.ok(!r.done)
    return r.value.message
  }
  const first = next() // connects
  await subscriptions(1, createClient({ baseUrl: `http://127.0.0.1:${port}` }))
  const ids: string[] = []
  for (const m of ['r1', 'r2', 'r3']) ids.push((await post(m)).id)
  assert.deepEqual([await first, await next(), await next()], ['r1', 'r2', 'r3'])

  const fourth = next() // the loop waits for its next item through the restart
  await stop(instance) // ends the stream with `event: shutdown`; reconnecting fails meanwhile
  for (const m of ['r4', 'r5', 'r6']) await post(m)
  await new Promise((r) => setTimeout(r, 1500)) // the server's `retry: 1000`, then refused attempts
  instance = await startDemo(port)
  assert.deepEqual([await fourth, await next(), await next()], ['r4', 'r5', 'r6'])
  await post('r7')
  assert.equal(await next(), 'r7', 'nothing twice')
  await it.return?.()

  assert.equal(reconnects[0]?.reason, 'shutdown')
  assert.ok(reconnects.every((r) => r.lastEventId === ids[2]), JSON.stringify(reconnects))
  assert.ok(reconnects.some((r) => r.reason === 'network'), 'it retried while the server was down')
})
