// The README's browser usage, type-checked (tsconfig.browser.json) against the generated client.
import { createClient, PikkuHttpError, streamUpdates, type Notification } from './pikku-fetch.gen'

// Same origin, the session cookie after login: the seed's import works as written.
for await (const update of streamUpdates({ interval_ms: 1000 })) {
  console.log('Received:', update.data.count, update.data.message)
  if (update.data.count >= 3) break // closes the connection
}

// Another origin, or a bearer token: a client of its own.
const api = createClient({ baseUrl: 'https://api.example.com', headers: { Authorization: 'Bearer <token>' } })
const controller = new AbortController()
try {
  const feed = api.streamUserNotifications({ userId: 'alice' }, { signal: controller.signal })
  for await (const n of feed) {
    const note: Notification = n
    console.log(note.type, note.message, 'resume point:', feed.lastEventId)
  }
} catch (e) {
  if (e instanceof PikkuHttpError && e.status === 401) console.log('log in first:', e.body.message)
  else throw e
}
document.querySelector('#stop')?.addEventListener('click', () => controller.abort())
