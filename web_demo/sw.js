// Offline copy of the demo. Once the model has loaded, the page hands this worker the URLs it
// fetched (the page, its scripts, the LiteRT.js wasm build this browser uses, manifest.json,
// model.tflite) and the worker stores them. Requests go to the network first, so a new page or
// model is picked up whenever the server answers; without a network the stored copy answers.
// Service workers need a secure context: https, or http on localhost / 127.0.0.1.

const CACHE = 'ich-edge-web-demo-v1';

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

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith((async () => {
    try {
      return await fetch(request);
    } catch (err) {
      const cached = await caches.match(request.url, { ignoreSearch: request.mode === 'navigate' });
      if (cached) return cached;
      throw err;
    }
  })());
});
