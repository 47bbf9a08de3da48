// The queue contract (test/queue/conformance.ts) on the Redis engine: the same tests as the local queues',
// against a real redis-server started for this file on a loopback port.
import { connect, type RedisContext } from '../../lib/redis/index.ts';
import { startTask } from '../_support/harness.ts';
import { type RedisServer, startRedis, whenRedis } from '../_support/redis-server.ts';
import { queueConformance, type AnyJoinableQueue, type AnyQueue, type AnySimpleQueue } from '../queue/conformance.ts';

const tasks = new URL('../fixtures/conformance-tasks.ts', import.meta.url);

whenRedis(() => {
  let server: RedisServer;
  let redis: RedisContext;
  let n = 0;
  const name = () => `conformance-${process.pid}-${++n}`;

  queueConformance({
    name: 'redis',
    setup: async () => {
      server = await startRedis();
      redis = await connect(server.url);
    },
    teardown: async () => {
      await redis.close();
      await server.stop();
    },
    Queue: <T>(options?: { maxsize?: number }) => redis.Queue<T>(name(), options) as unknown as AnyQueue<T>,
    JoinableQueue: <T>(options?: { maxsize?: number }) =>
      redis.JoinableQueue<T>(name(), options) as unknown as AnyJoinableQueue<T>,
    SimpleQueue: <T>() => redis.SimpleQueue<T>(name()) as unknown as AnySimpleQueue<T>,
    start: (target, args) => startTask(tasks, target, args),
  });
});
