// The four bench routes (see examples/bench.rs) served by Pikku's own TypeScript runtime,
// npm @pikku/core 0.12.84, on Node: the third column of `bench-all`.
//
// No Pikku CLI runs here (it is not on the registry this box reaches), so the metadata its
// code generator would write (function and HTTP route meta) is filled in by hand below, and
// the routes are wired with the runtime's own `wireHTTP`. Requests go through the runtime's
// `fetch` entry point (`@pikku/core/http`: routing, the function runner, its SSE channel and
// `LocalEventHubService`), bridged to `node:http` by the small adapter at the bottom, since
// no `@pikku/*` server adapter (express/fastify/uws) is published on this registry either.
//
// Usage: PIKKU_ADDR=127.0.0.1:8080 node server.mjs

import { createServer } from 'node:http'
import { Readable } from 'node:stream'
import { fetch, wireHTTP } from '@pikku/core/http'
import { LocalEventHubService } from '@pikku/core/channel/local'
import { ConsoleLogger, LogLevel } from '@pikku/core/services'

// Unix time in microseconds, sub-millisecond where the clock allows (the loadgen's latency).
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000)

// --- the functions, as a Pikku user writes them (channel API of @pikku/core 0.12) ---

const benchTicks = {
  auth: false,
  func: async (_services, data, { channel }) => {
    const n = Number(data.n ?? 0)
    // Produce in the background so the response starts at once; yield to the event loop
    // every 256 events so the socket drains while the generator runs. The runtime's stream
    // has no cancel hook, so a client that left shows up as `send` throwing: stop there.
    ;(async () => {
      for (let i = 0; i < n; i++) {
        if (channel.state === 'closed') return
        channel.send({ seq: i, ts_us: nowUs() })
        if ((i & 255) === 255) await new Promise((r) => setImmediate(r))
      }
      channel.close()
    })().catch(() => {})
  },
}

// Nothing but an open stream: @pikku/core's fetch SSE response sends one `:` comment when it
// opens and has no heartbeat setting, so none is sent afterwards.
const benchIdle = {
  auth: false,
  func: async () => {},
}

const benchSubscribe = {
  auth: false,
  func: async ({ eventHub }, data, { channel }) => {
    eventHub.subscribe(String(data.topic ?? ''), channel.channelId)
  },
}

const benchPublish = {
  auth: false,
  func: async ({ eventHub }, data) => {
    const topic = String(data.topic ?? '')
    const n = Number(data.n ?? 0)
    for (let i = 0; i < n; i++) {
      eventHub.publish(topic, null, { seq: i, ts_us: nowUs() })
    }
    return { published: n }
  },
}

// --- what `pikku` (the CLI) would generate: function meta and HTTP meta ---

const state = globalThis[Symbol.for('@pikku/core/state')].get('__main__')
const routes = [
  ['get', '/bench/ticks', 'benchTicks', benchTicks, true],
  ['get', '/bench/idle', 'benchIdle', benchIdle, true],
  ['get', '/bench/subscribe', 'benchSubscribe', benchSubscribe, true],
  ['post', '/bench/publish', 'benchPublish', benchPublish, false],
]
for (const [method, route, id, func, sse] of routes) {
  state.function.meta[id] = { pikkuFuncId: id, name: id, sessionless: true, readonly: true }
  state.http.meta[method][route] = { pikkuFuncId: id, route, method, sse }
  wireHTTP({ method, route, func, auth: false, sse })
}

const logger = new ConsoleLogger()
logger.setLevel(LogLevel.warn)
state.package.singletonServices = {
  config: {},
  logger,
  eventHub: new LocalEventHubService(),
}

// --- node:http <-> fetch bridge ---

const server = createServer(async (req, res) => {
  const controller = new AbortController()
  let reader
  res.on('close', () => {
    controller.abort()
    reader?.cancel().catch(() => {})
  })
  try {
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD'
    const request = new Request(`http://${req.headers.host ?? 'localhost'}${req.url}`, {
      method: req.method,
      headers: req.headers,
      body: hasBody ? Readable.toWeb(req) : undefined,
      duplex: hasBody ? 'half' : undefined,
      signal: controller.signal,
    })
    const response = await fetch(request)
    res.writeHead(response.status, Object.fromEntries(response.headers))
    if (!response.body) return res.end()
    reader = response.body.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      // A socket that closes while full never drains: wake on either.
      if (!res.write(value)) {
        await new Promise((r) => {
          res.once('drain', r)
          res.once('close', r)
        })
      }
      if (res.destroyed) break
    }
    res.end()
  } catch (e) {
    if (!res.headersSent) res.writeHead(500).end(String(e))
    else res.destroy()
  }
})
server.keepAliveTimeout = 60_000
server.headersTimeout = 0
server.requestTimeout = 0
server.maxConnections = Infinity

const [host, port] = (process.env.PIKKU_ADDR ?? '127.0.0.1:8080').split(/:(?=\d+$)/)
server.listen(Number(port), host, 100_000, () => {
  console.error(`pikku-node bench listening on http://${host}:${port}`)
})
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0))
