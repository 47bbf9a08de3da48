// The bundle (dist/lib/mpthreads.js) holds mpthreads/redis too, so that a process has one copy of the library:
// one ClosedError, one handle registry. dist/lib/redis.js (lib/redis/dist-entry.mjs) imports the bundle and
// exports what this puts on globalThis. The Redis client itself is loaded only by connect().
import * as api from './index.ts';

(globalThis as Record<symbol, unknown>)[Symbol.for('mpthreads.redis')] = api;
