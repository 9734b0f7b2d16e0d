// The demo's service worker: cross-origin isolation and an offline copy.
//
// Isolation: every same-origin response it serves gets Cross-Origin-Opener-Policy: same-origin
// and Cross-Origin-Embedder-Policy: require-corp, so the page is cross-origin isolated on any
// static host and LiteRT.js can load its threaded wasm build (src/isolation.js registers this
// worker at start and reloads once under it).
//
// Offline copy: once the model has loaded, the page hands this worker the URLs it fetched (the
// page, its scripts, the LiteRT.js wasm build this browser uses, manifest.json, model.tflite)
// and the worker stores them. Requests go to the network first, so a new page or model is
// picked up whenever the server answers; without a network the stored copy answers.
// Service workers need a secure context: https, or http on localhost / 127.0.0.1.

const CACHE = 'ich-edge-web-demo-v1';

const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('message', (event) => {
  const urls = (event.data && event.data.cache) || [];
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    const sameOrigin = urls.filter((url) => new URL(url).origin === self.location.origin);
    await Promise.all(sameOrigin.map(async (url) => {
      const response = await fetch(url, { cache: 'force-cache' });
      if (response.ok) await cache.put(url, response);
    }));
    event.source.postMessage({ cached: sameOrigin.length });
  })());
});

/** The response with the isolation headers added (opaque and error responses as they are). */
function isolated(response) {
  if (!response || response.status === 0 || response.type === 'opaqueredirect') return response;
  const headers = new Headers(response.headers);
  for (const [name, value] of Object.entries(ISOLATION_HEADERS)) headers.set(name, value);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith((async () => {
    try {
      return isolated(await fetch(request));
    } catch (err) {
      const cached = await caches.match(request.url, { ignoreSearch: request.mode === 'navigate' });
      if (cached) return isolated(cached);
      throw err;
    }
  })());
});
