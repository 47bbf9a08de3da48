// One OS process of bench/redis.ts, spawned as `node --import tsx bench/redis/child.ts <role> '<json options>'`.
//
// Protocol: the child prints `TAG + JSON` lines on stdout (common.ts: ready, result, error) and reads plain
// command lines on stdin (`go`, `stop`). When stdin ends (the main process is gone, however it died), the
// child exits at once, so no child outlives a benchmark.
//
// Roles:
//   redis-producer      mpthreads/redis: `await q.put(x)` n times, then `await q.flush()` (after `go`)
//   redis-consumer      mpthreads/redis: first get pending, `ready`, then n gets: first get to last timed
//   redis-fanout        JoinableQueue: `loops` concurrent loops of get -> taskDone until a null task
//   redis-pinger/-ponger  round trips over two Queues: put(i) on ping, get from pong (ponger: get, put back)
//   redis-blocked-gets  `gets` gets at once on one queue, `ready` while they wait, result when all served
//   bull-producer       BullMQ: addBulk in chunks (after `go`)
//   bull-consumer       BullMQ Worker with `concurrency`: n jobs (first processor call to n-th completed), or
//                       until `stop` when n is 0
//   bull-pinger/-ponger round trips over two queues: add(i) on ping; the ponger's Worker adds it to pong,
//                       the pinger's Worker on pong takes it
//   bull-rpc-caller/-server round trips as `(await q.add(i)).waitUntilFinished(queueEvents)`; the server's
//                       processor returns the data
//   bull-idle-worker    a Worker with `concurrency` waiting on an empty queue (its connections are counted)
//   local-spsc, local-fanout, local-roundtrip  the local mpthreads queues between worker threads of this one
//                       process (Process targets in local-worker.ts)
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { TAG, checkTerm, expectedSum, latencyStats, makeItem, type Payload } from './common.ts';

type Options = Record<string, any>;

function emit(msg: Record<string, unknown>): void {
  process.stdout.write(`${TAG}${JSON.stringify(msg)}\n`);
}

// ---- commands from the main process --------------------------------------------------------------------

const pendingCommands: string[] = [];
let commandWaiter: ((line: string) => void) | undefined;
const stdin = createInterface({ input: process.stdin });
stdin.on('line', (line) => {
  if (commandWaiter !== undefined) {
    const w = commandWaiter;
    commandWaiter = undefined;
    w(line);
  } else pendingCommands.push(line);
});
stdin.on('close', () => process.exit(70)); // the main process went away

function command(): Promise<string> {
  const line = pendingCommands.shift();
  if (line !== undefined) return Promise.resolve(line);
  return new Promise((resolve) => (commandWaiter = resolve));
}

async function expectCommand(want: string): Promise<void> {
  const got = await command();
  if (got !== want) throw new Error(`expected command "${want}", got "${got}"`);
}

const now = () => performance.now();

/** Closing must not hang a run: a close that takes too long is reported as a warning, not waited for. */
async function closeWithin(what: string, p: Promise<unknown>, warnings: string[], ms = 5_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const t0 = now();
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
  try {
    const r = await Promise.race([p.then(() => 'done' as const), late]);
    if (r === 'late') warnings.push(`${what} did not resolve within ${ms} ms`);
    else if (now() - t0 > 1_000) warnings.push(`${what} took ${Math.round(now() - t0)} ms`);
  } catch (error) {
    warnings.push(`${what} rejected: ${String(error)}`);
  } finally {
    clearTimeout(timer);
  }
}

// ---- mpthreads/redis ------------------------------------------------------------------------------------

async function redisLib() {
  return await import('../../lib/redis/index.ts');
}

async function redisProducer(o: Options): Promise<Record<string, unknown>> {
  const { connect } = await redisLib();
  const ctx = await connect(o.url);
  const q = o.kind === 'JoinableQueue' ? ctx.JoinableQueue<unknown>(o.queue) : ctx.Queue<unknown>(o.queue);
  await q.flush(); // opened on the server
  emit({ ev: 'ready' });
  await expectCommand('go');
  const payload = o.payload as Payload;
  const n = o.n as number;
  const t0 = now();
  for (let i = 0; i < n; i++) await q.put(makeItem(payload, i));
  await q.flush();
  const seconds = (now() - t0) / 1000;
  emit({ ev: 'flushed', seconds });
  const warnings: string[] = [];
  await closeWithin('context close()', ctx.close(), warnings);
  return { seconds, warnings };
}

async function redisConsumer(o: Options): Promise<Record<string, unknown>> {
  const { connect } = await redisLib();
  const ctx = await connect(o.url);
  const q = ctx.Queue<unknown>(o.queue);
  await q.flush();
  const payload = o.payload as Payload;
  const n = o.n as number;
  const first = q.get();
  emit({ ev: 'ready' });
  let sum = checkTerm(payload, await first);
  const t0 = now();
  for (let k = 1; k < n; k++) sum += checkTerm(payload, await q.get());
  const seconds = (now() - t0) / 1000;
  const warnings: string[] = [];
  await closeWithin('context close()', ctx.close(), warnings);
  return { seconds, ok: sum === expectedSum(n), sum, warnings };
}

async function redisFanout(o: Options): Promise<Record<string, unknown>> {
  const { connect } = await redisLib();
  const ctx = await connect(o.url);
  const q = ctx.JoinableQueue<number | null>(o.queue);
  await q.flush();
  let count = 0;
  const loops = Array.from({ length: o.loops as number }, async () => {
    for (;;) {
      const x = await q.get();
      await q.taskDone();
      if (x === null) return;
      count++;
    }
  });
  emit({ ev: 'ready' });
  await Promise.all(loops);
  const warnings: string[] = [];
  await closeWithin('context close()', ctx.close(), warnings);
  return { count, warnings };
}

async function redisPinger(o: Options): Promise<Record<string, unknown>> {
  const { connect } = await redisLib();
  const ctx = await connect(o.url);
  const ping = ctx.Queue<number>(o.ping);
  const pong = ctx.Queue<number>(o.pong);
  await ping.flush();
  await pong.flush();
  emit({ ev: 'ready' });
  await expectCommand('go');
  for (let i = 0; i < o.warmup; i++) {
    await ping.put(i);
    await pong.get();
  }
  const ms = new Float64Array(o.n as number);
  for (let i = 0; i < ms.length; i++) {
    const t = now();
    await ping.put(i);
    const v = await pong.get();
    ms[i] = now() - t;
    if (v !== i) throw new Error(`round trip ${i} came back as ${v}`);
  }
  await ping.put(-1);
  const warnings: string[] = [];
  await closeWithin('context close()', ctx.close(), warnings);
  return { ...latencyStats(ms), warnings };
}

async function redisPonger(o: Options): Promise<Record<string, unknown>> {
  const { connect } = await redisLib();
  const ctx = await connect(o.url);
  const ping = ctx.Queue<number>(o.ping);
  const pong = ctx.Queue<number>(o.pong);
  await ping.flush();
  await pong.flush();
  emit({ ev: 'ready' });
  let count = 0;
  for (;;) {
    const x = await ping.get();
    if (x < 0) break;
    await pong.put(x);
    count++;
  }
  const warnings: string[] = [];
  await closeWithin('context close()', ctx.close(), warnings);
  return { count, warnings };
}

async function redisBlockedGets(o: Options): Promise<Record<string, unknown>> {
  const { connect } = await redisLib();
  const ctx = await connect(o.url);
  const q = ctx.Queue<number>(o.queue);
  await q.flush();
  const gets = o.gets as number;
  let served = 0;
  let sum = 0;
  const all = Array.from({ length: gets }, () =>
    q.get().then((x) => {
      served++;
      sum += x;
    }),
  );
  await sleep(500); // let the gets reach the server
  emit({ ev: 'ready', servedEarly: served });
  await Promise.all(all);
  const warnings: string[] = [];
  await closeWithin('context close()', ctx.close(), warnings);
  return { served, ok: sum === expectedSum(gets), warnings };
}

// ---- BullMQ ---------------------------------------------------------------------------------------------

/** BullMQ on node-redis (ioredis is not installed): every connection BullMQ makes is a node-redis client. */
async function bull(url: string) {
  const bullmq = await import('bullmq');
  const { createClient } = await import('redis');
  bullmq.RedisConnection.clientFactory = () => bullmq.createNodeRedisClient(createClient({ url }));
  return bullmq;
}

const jobOptions = { removeOnComplete: true, removeOnFail: false };

async function bullProducer(o: Options): Promise<Record<string, unknown>> {
  const { Queue } = await bull(o.url);
  const q = new Queue(o.queue, { connection: { url: o.url }, defaultJobOptions: jobOptions });
  await q.waitUntilReady();
  emit({ ev: 'ready' });
  await expectCommand('go');
  const payload = o.payload as Payload;
  const n = o.n as number;
  const chunk = o.chunk as number;
  const t0 = now();
  for (let i = 0; i < n; i += chunk) {
    const jobs = [];
    for (let k = i; k < Math.min(i + chunk, n); k++) jobs.push({ name: 'j', data: makeItem(payload, k) });
    await q.addBulk(jobs);
  }
  const seconds = (now() - t0) / 1000;
  emit({ ev: 'flushed', seconds });
  const warnings: string[] = [];
  await closeWithin('Queue close()', q.close(), warnings);
  return { seconds, warnings };
}

async function bullConsumer(o: Options): Promise<Record<string, unknown>> {
  const { Worker } = await bull(o.url);
  const payload = o.payload as Payload;
  const n = o.n as number;
  let sum = 0;
  let t0 = 0;
  let t1 = 0;
  let completed = 0;
  let failed = 0;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const w = new Worker(
    o.queue,
    async (job) => {
      if (t0 === 0) t0 = now();
      sum += checkTerm(payload, job.data);
    },
    { connection: { url: o.url }, concurrency: o.concurrency },
  );
  w.on('completed', () => {
    if (++completed === n) {
      t1 = now();
      finish();
    }
  });
  w.on('failed', () => failed++);
  w.on('error', (error) => process.stderr.write(`bull-consumer worker error: ${String(error)}\n`));
  await w.waitUntilReady();
  emit({ ev: 'ready' });
  if (n > 0) await finished;
  else await expectCommand('stop');
  const warnings: string[] = [];
  await closeWithin('Worker close()', w.close(), warnings);
  if (n > 0) return { seconds: (t1 - t0) / 1000, ok: sum === expectedSum(n) && failed === 0, failed, warnings };
  return { count: completed, failed, warnings };
}

async function bullPinger(o: Options): Promise<Record<string, unknown>> {
  const { Queue, Worker } = await bull(o.url);
  const ping = new Queue(o.ping, { connection: { url: o.url }, defaultJobOptions: jobOptions });
  let expecting = -1;
  let arrived: (v: number) => void = () => {};
  const w = new Worker(
    o.pong,
    async (job) => {
      if (job.data === expecting) arrived(job.data);
    },
    { connection: { url: o.url }, concurrency: 1 },
  );
  await ping.waitUntilReady();
  await w.waitUntilReady();
  emit({ ev: 'ready' });
  await expectCommand('go');
  const roundTrip = async (i: number) => {
    const back = new Promise<number>((resolve) => (arrived = resolve));
    expecting = i;
    await ping.add('p', i);
    return await back;
  };
  for (let i = 0; i < o.warmup; i++) await roundTrip(i);
  const ms = new Float64Array(o.n as number);
  for (let i = 0; i < ms.length; i++) {
    const t = now();
    await roundTrip(1_000_000 + i);
    ms[i] = now() - t;
  }
  await ping.add('p', -1);
  const warnings: string[] = [];
  await closeWithin('Worker close()', w.close(), warnings);
  await closeWithin('Queue close()', ping.close(), warnings);
  return { ...latencyStats(ms), warnings };
}

async function bullPonger(o: Options): Promise<Record<string, unknown>> {
  const { Queue, Worker } = await bull(o.url);
  const pong = new Queue(o.pong, { connection: { url: o.url }, defaultJobOptions: jobOptions });
  let count = 0;
  let stop: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const w = new Worker(
    o.ping,
    async (job) => {
      if (job.data < 0) setImmediate(stop);
      else {
        await pong.add('p', job.data);
        count++;
      }
    },
    { connection: { url: o.url }, concurrency: 1 },
  );
  await pong.waitUntilReady();
  await w.waitUntilReady();
  emit({ ev: 'ready' });
  await stopped;
  const warnings: string[] = [];
  await closeWithin('Worker close()', w.close(), warnings);
  await closeWithin('Queue close()', pong.close(), warnings);
  return { count, warnings };
}

async function bullRpcCaller(o: Options): Promise<Record<string, unknown>> {
  const { Queue, QueueEvents } = await bull(o.url);
  // waitUntilFinished reads the finished job's return value: with removeOnComplete: true a job can be gone
  // before it looks ("Missing key for job … isFinished"), so this queue keeps its last 1,000 completed jobs.
  const q = new Queue(o.queue, {
    connection: { url: o.url },
    defaultJobOptions: { removeOnComplete: 1_000, removeOnFail: false },
  });
  const events = new QueueEvents(o.queue, { connection: { url: o.url } });
  await q.waitUntilReady();
  await events.waitUntilReady();
  emit({ ev: 'ready' });
  await expectCommand('go');
  const call = async (i: number) => {
    const job = await q.add('r', i);
    const v = await job.waitUntilFinished(events, 30_000);
    if (v !== i) throw new Error(`rpc ${i} returned ${v}`);
  };
  for (let i = 0; i < o.warmup; i++) await call(i);
  const ms = new Float64Array(o.n as number);
  for (let i = 0; i < ms.length; i++) {
    const t = now();
    await call(i);
    ms[i] = now() - t;
  }
  await q.add('r', -1);
  const warnings: string[] = [];
  await closeWithin('QueueEvents close()', events.close(), warnings);
  await closeWithin('Queue close()', q.close(), warnings);
  return { ...latencyStats(ms), warnings };
}

async function bullRpcServer(o: Options): Promise<Record<string, unknown>> {
  const { Worker } = await bull(o.url);
  let count = 0;
  let stop: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const w = new Worker(
    o.queue,
    async (job) => {
      if (job.data < 0) setImmediate(stop);
      else count++;
      return job.data;
    },
    { connection: { url: o.url }, concurrency: 1 },
  );
  await w.waitUntilReady();
  emit({ ev: 'ready' });
  await stopped;
  const warnings: string[] = [];
  await closeWithin('Worker close()', w.close(), warnings);
  return { count, warnings };
}

async function bullIdleWorker(o: Options): Promise<Record<string, unknown>> {
  const { Worker } = await bull(o.url);
  const w = new Worker(o.queue, async () => {}, { connection: { url: o.url }, concurrency: o.concurrency });
  await w.waitUntilReady();
  await sleep(500);
  emit({ ev: 'ready' });
  await expectCommand('stop');
  const warnings: string[] = [];
  await closeWithin('Worker close()', w.close(), warnings);
  return { warnings };
}

// ---- local mpthreads queues (worker threads of this process) --------------------------------------------

const localModule = new URL('./local-worker.ts', import.meta.url).href;

async function localSpsc(o: Options): Promise<Record<string, unknown>> {
  const { Process, Queue } = await import('../../lib/index.ts');
  const q = new Queue<unknown>();
  const results = new Queue<unknown>();
  const consumer = new Process({ target: 'localConsumer', module: localModule, args: [q, results, o.n, o.payload] });
  consumer.start();
  if ((await results.get()) !== 'ready') throw new Error('local consumer: expected ready');
  const producer = new Process({ target: 'localProducer', module: localModule, args: [q, o.n, o.payload] });
  producer.start();
  const r = (await results.get()) as { seconds: number; ok: boolean };
  await producer.join();
  await consumer.join();
  return r;
}

async function localFanout(o: Options): Promise<Record<string, unknown>> {
  const { Process, JoinableQueue, Queue } = await import('../../lib/index.ts');
  const tasks = new JoinableQueue<number | null>();
  const results = new Queue<unknown>();
  const workers = [0, 1].map(
    () => new Process({ target: 'localFanoutWorker', module: localModule, args: [tasks, results] }),
  );
  for (const w of workers) w.start();
  for (const _ of workers) if ((await results.get()) !== 'ready') throw new Error('local fanout: expected ready');
  const n = o.n as number;
  const t0 = now();
  for (let i = 0; i < n; i++) await tasks.put(i);
  await tasks.join();
  const seconds = (now() - t0) / 1000;
  for (const _ of workers) await tasks.put(null);
  let count = 0;
  for (const _ of workers) count += ((await results.get()) as { count: number }).count;
  for (const w of workers) await w.join();
  return { seconds, ok: count === n, count };
}

async function localRoundtrip(o: Options): Promise<Record<string, unknown>> {
  const { Process, Queue } = await import('../../lib/index.ts');
  const ping = new Queue<number>();
  const pong = new Queue<number>();
  const results = new Queue<unknown>();
  const ponger = new Process({ target: 'localPonger', module: localModule, args: [ping, pong] });
  const pinger = new Process({
    target: 'localPinger',
    module: localModule,
    args: [ping, pong, results, o.n, o.warmup],
  });
  ponger.start();
  pinger.start();
  const r = (await results.get()) as Record<string, unknown>;
  await pinger.join();
  await ponger.join();
  return r;
}

// ---- dispatch -------------------------------------------------------------------------------------------

const roles: Record<string, (o: Options) => Promise<Record<string, unknown>>> = {
  'redis-producer': redisProducer,
  'redis-consumer': redisConsumer,
  'redis-fanout': redisFanout,
  'redis-pinger': redisPinger,
  'redis-ponger': redisPonger,
  'redis-blocked-gets': redisBlockedGets,
  'bull-producer': bullProducer,
  'bull-consumer': bullConsumer,
  'bull-pinger': bullPinger,
  'bull-ponger': bullPonger,
  'bull-rpc-caller': bullRpcCaller,
  'bull-rpc-server': bullRpcServer,
  'bull-idle-worker': bullIdleWorker,
  'local-spsc': localSpsc,
  'local-fanout': localFanout,
  'local-roundtrip': localRoundtrip,
};

const [role = '', json = '{}'] = process.argv.slice(2);
const run = roles[role];
if (run === undefined) {
  emit({ ev: 'error', message: `unknown role "${role}" (one of ${Object.keys(roles).join(', ')})` });
  process.exit(2);
}
try {
  const result = await run(JSON.parse(json) as Options);
  emit({ ev: 'result', ...result });
  process.exit(0);
} catch (error) {
  emit({ ev: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  process.exit(1);
}
