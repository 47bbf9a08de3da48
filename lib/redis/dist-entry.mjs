// dist/lib/redis.js, the package's `mpthreads/redis` export: the classes of the core bundle, which registers
// them on globalThis (lib/redis/expose.ts), so that both imports share one copy of the library.
// @ts-nocheck: plain JavaScript copied into dist/ as it is.
import './mpthreads.js';

const api = globalThis[Symbol.for('mpthreads.redis')];
export const {
  connect,
  RedisContext,
  RedisQueue,
  RedisJoinableQueue,
  RedisSimpleQueue,
  ConnectionError,
  ClosedError,
  Empty,
  Full,
  ProcessError,
  TimeoutError,
  ErrorCode,
} = api;
