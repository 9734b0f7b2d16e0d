// Cross-origin isolation, which LiteRT.js's threaded wasm build needs (SharedArrayBuffer).
//
// A page is cross-origin isolated when its responses carry
//   Cross-Origin-Opener-Policy: same-origin
//   Cross-Origin-Embedder-Policy: require-corp
// A server may send them (the test server does); a plain static host (GitHub Pages, S3, a
// phone's file server) does not, so sw.js adds them to every same-origin response it serves.
// On the first visit the page is not controlled by sw.js yet: it registers it and reloads once.
// Without a service worker (plain http off localhost, old browsers) the page runs on one
// thread and says why.

const RELOAD_KEY = 'ich-edge-isolation-reload';

/**
 * Make the page cross-origin isolated if it is not: register sw.js and reload once under it.
 * @returns {Promise<boolean>} true when the page is reloading (do nothing more), else false
 */
export async function ensureIsolation() {
  if (globalThis.crossOriginIsolated) {
    sessionStorage.removeItem(RELOAD_KEY);
    return false;
  }
  if (!('serviceWorker' in navigator) || !window.isSecureContext) return false;
  if (sessionStorage.getItem(RELOAD_KEY)) return false; // reloaded once already: this browser does not isolate
  try {
    await navigator.serviceWorker.register('sw.js');
    await navigator.serviceWorker.ready;
  } catch {
    return false;
  }
  sessionStorage.setItem(RELOAD_KEY, '1');
  location.reload();
  return true;
}

/** Why the page runs without threads (null when it is isolated). */
export function isolationProblem() {
  if (globalThis.crossOriginIsolated) return null;
  if (!window.isSecureContext) return 'the page is not served over https or from localhost, so it cannot be cross-origin isolated';
  if (!('serviceWorker' in navigator)) return 'this browser has no service workers to make the page cross-origin isolated';
  return 'the page is not cross-origin isolated (COOP/COEP headers)';
}
