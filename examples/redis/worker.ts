// A worker of the README's "Across processes and machines" example: start as many as you like, anywhere that
// reaches the server. Each squares the numbers it gets until it gets null.
//   REDIS_URL=redis://10.0.0.5:6379 npx tsx examples/redis/worker.ts
import { connect } from '../../lib/redis/index.ts'; // in an app: from 'mpthreads/redis'

const redis = await connect(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const tasks = redis.JoinableQueue<number | null>('tasks');
const results = redis.Queue<number>('results');

for (let n = await tasks.get(); n !== null; n = await tasks.get()) {
  await results.put(n * n);
  await tasks.taskDone(); // acknowledges this handle's oldest lease
}
await tasks.taskDone(); // the stop sign is a task too
await redis.close();
