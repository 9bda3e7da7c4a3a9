// Idle SSE streams on plain Node.js: `node:http` only, no framework, no dependencies. The
// "Node.js plain SSE" column of `bench-all`'s idle rows, the memory per stream to beat: what
// any Node SSE server pays before its framework adds anything.
//
// GET /bench/idle answers 200 `text/event-stream` and then sends nothing but a `:` comment
// every PIKKU_SSE_HEARTBEAT_MS (default 15000), like the Rust bench app and the axum baseline.
// Every other path is 404: the other bench routes are not part of this column.
//
// Usage: PIKKU_ADDR=127.0.0.1:8080 node server.mjs

import { createServer } from 'node:http'

const heartbeatMs = Number(process.env.PIKKU_SSE_HEARTBEAT_MS ?? 15_000)

// One timer for every stream rather than one per stream: the cheapest way to keep idle
// streams alive on Node, so the column is a floor, not a straw man.
const streams = new Set()
setInterval(() => {
  for (const res of streams) res.write(':\n\n')
}, heartbeatMs).unref()

const server = createServer((req, res) => {
  const path = req.url.split('?', 1)[0]
  if (req.method !== 'GET' || path !== '/bench/idle') {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found')
    return
  }
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
  })
  // Send the head now: the client counts a stream as open once it has the response head.
  res.flushHeaders()
  streams.add(res)
  res.on('close', () => streams.delete(res))
})
// Streams last as long as the client holds them; Node's request timeouts would cut them.
server.headersTimeout = 0
server.requestTimeout = 0
server.maxConnections = Infinity

const [host, port] = (process.env.PIKKU_ADDR ?? '127.0.0.1:8080').split(/:(?=\d+$)/)
server.listen(Number(port), host, 100_000, () => {
  console.error(`node-plain bench listening on http://${host}:${port}`)
})
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0))
