// The producer of the README's "Across processes and machines" example: puts 1,000 tasks on a JoinableQueue
// on a Redis server, waits until worker processes (worker.ts, on this machine or others) have done them all,
// adds up their results, and tells the workers to stop.
//   REDIS_URL=redis://10.0.0.5:6379 npx tsx examples/redis/producer.ts 2   # 2 = how many workers to stop
import { connect } from '../../lib/redis/index.ts'; // in an app: from 'mpthreads/redis'

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const workers = Number(process.argv[2] ?? 1);

const redis = await connect(url); // a context, as Python's get_context()
const tasks = redis.JoinableQueue<number | null>('tasks', { visibilityTimeout: 30_000 });
const results = redis.Queue<number>('results'); // named: every process that opens the name shares it

for (let n = 1; n <= 1_000; n++) await tasks.put(n);
await tasks.join(); // every task acknowledged, by whichever worker got it
let sum = 0;
for (let i = 0; i < 1_000; i++) sum += await results.get();
console.log(`sum of squares 1..1000 = ${sum}`);
for (let i = 0; i < workers; i++) await tasks.put(null); // one stop sign per worker
await redis.close();
