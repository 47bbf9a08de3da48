// mpthreads/redis: the queue API on a Redis server (7 or later), for queues shared by processes and
// machines. The client, node-redis (package `redis`), is an optional peer dependency, imported by connect().
export { connect, RedisContext, type ConnectOptions } from './context.ts';
export {
  RedisQueue,
  RedisJoinableQueue,
  RedisSimpleQueue,
  type RedisQueueOptions,
  type RedisJoinableQueueOptions,
} from './queues.ts';
export { ConnectionError, ClosedError, Empty, Full, ProcessError, TimeoutError, ErrorCode } from '../errors.ts';
