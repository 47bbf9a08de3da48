// Queues across OS processes on one Redis server, side by side in one run: mpthreads/redis against BullMQ (on
// the same server, through node-redis), with the local mpthreads queues between worker threads of one process
// as a reference. Prints a Markdown table with ratios, then one line per case saying what was measured.
//
//   npx tsx bench/redis.ts [--quick]
//
//   --quick   N = 20,000 items (default 200,000), 300 round trips (default 2,000), 1 round (default 3)
//
// The run starts its own redis-server (test/_support/redis-server.ts: a free loopback port, a temp dir, no
// persistence) and stops it at the end. Every process is a child_process spawn of this node with
// `--import tsx bench/redis/child.ts <role>` (the roles are listed there). The run is made of rounds, each
// running every case's implementations once, one after the other, so a change in the machine's load reaches
// all of them; a round starts only if it fits the time budget (the full run must end within 10 minutes,
// --quick within 2), and the table says how many runs each row had. Each row's figure is the median of its
// runs, its spread the lowest and highest. No child outlives the run: each is SIGKILLed on exit, on
// SIGINT/SIGTERM/SIGHUP and on failure, and a child exits by itself when its stdin (this process) goes away;
// a shell that waits on a pipe from this process kills redis-server if this process is SIGKILLed.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';
import { startRedis, type RedisServer } from '../test/_support/redis-server.ts';
import { TAG, type ChildMessage } from './redis/common.ts';

const USAGE = 'usage: npx tsx bench/redis.ts [--quick]';
for (const a of process.argv.slice(2)) {
  if (a === '--help' || a === '-h') {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  if (a !== '--quick') {
    process.stderr.write(`unknown argument ${a}\n${USAGE}\n`);
    process.exit(2);
  }
}
const quick = process.argv.includes('--quick');
const N = quick ? 20_000 : 200_000;
const ROUND_TRIPS = quick ? 300 : 2_000;
const WARMUP = quick ? 50 : 200;
const REPS = quick ? 1 : 3;
/** Seconds after which no new round starts (the full run must end within 10 minutes, --quick within 2). */
const BUDGET_S = quick ? 100 : 540;
let runs = 0;
const BLOCKED_GETS = 1_000;
const BULL_CHUNK = 1_000;
const BULL_CONCURRENCY = 100;
const FANOUT_LOOPS = 100;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const childFile = join(root, 'bench', 'redis', 'child.ts');

// ---- children ---------------------------------------------------------------------------------------------

const live = new Set<ChildProcess>();
function killAll(): void {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {}
  }
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: stopping the children and redis-server\n`);
    process.exit(130); // the 'exit' hooks kill the children and redis-server
  });
}

class Child {
  readonly role: string;
  readonly proc: ChildProcess;
  readonly #messages: ChildMessage[] = [];
  #wake: (() => void) | undefined;
  #exit: string | undefined;
  #stderr = '';
  readonly exited: Promise<void>;

  constructor(role: string, options: Record<string, unknown>) {
    this.role = role;
    this.proc = spawn(process.execPath, ['--import', 'tsx', childFile, role, JSON.stringify(options)], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    live.add(this.proc);
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        live.delete(this.proc);
        this.#exit = signal !== null ? `signal ${signal}` : `code ${code}`;
        this.#wake?.();
        resolve();
      });
      this.proc.once('error', (error) => {
        live.delete(this.proc);
        this.#exit = `spawn error ${error.message}`;
        this.#wake?.();
        resolve();
      });
    });
    this.proc.stdin!.on('error', () => {}); // EPIPE when it already exited: its exit says what happened
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      if (line.startsWith(TAG)) {
        this.#messages.push(JSON.parse(line.slice(TAG.length)) as ChildMessage);
        this.#wake?.();
      } else process.stderr.write(`[${role}] ${line}\n`);
    });
    this.proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.#stderr = (this.#stderr + d).slice(-3_000);
    });
  }

  send(command: string): void {
    this.proc.stdin!.write(`${command}\n`);
  }

  /** The next message `ev` (earlier ones of other kinds are skipped); rejects on an error message, exit, or timeout. */
  async waitFor(ev: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.#messages.shift();
      if (m !== undefined) {
        if (m.ev === 'error') throw new Error(`${this.role} failed: ${(m as { message: string }).message}`);
        if (m.ev === ev) return m;
        continue;
      }
      if (this.#exit !== undefined)
        throw new Error(`${this.role} exited (${this.#exit}) before "${ev}"${this.#tail()}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`${this.role}: no "${ev}" within ${Math.round(timeoutMs / 1000)} s (hung?)${this.#tail()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          this.#wake = undefined;
          resolve();
        };
      });
    }
  }

  #tail(): string {
    const t = this.#stderr.trim();
    return t === '' ? '' : `; its stderr ends:\n${t}`;
  }

  /** Waits for its exit (it exits by itself once done); SIGKILL after `ms`. */
  async end(ms = 10_000): Promise<string | undefined> {
    let late = false;
    await Promise.race([this.exited, sleep(ms).then(() => (late = true))]);
    if (!late) return undefined;
    this.proc.kill('SIGKILL');
    await this.exited;
    return `${this.role} did not exit within ${ms / 1000} s of its result (SIGKILLed)`;
  }

  kill(): void {
    this.proc.kill('SIGKILL');
  }
}

/** Runs `body` with the children it spawns; whatever happens, every one of them is gone afterwards. */
async function withChildren<T>(body: (spawnChild: (role: string, o: Record<string, unknown>) => Child) => Promise<T>) {
  const spawned: Child[] = [];
  try {
    return await body((role, o) => {
      const c = new Child(role, o);
      spawned.push(c);
      return c;
    });
  } catch (error) {
    for (const c of spawned) c.kill();
    throw error;
  } finally {
    const late = (await Promise.all(spawned.map((c) => c.end()))).filter((w) => w !== undefined);
    for (const w of late) warn(w);
  }
}

/** A deadline for a step that moves `items` items: generous, it only catches a hang. */
const stepTimeout = (items: number) => 60_000 + items * 0.5;

// ---- output -----------------------------------------------------------------------------------------------

const began = performance.now();
function log(line: string): void {
  const s = Math.round((performance.now() - began) / 1000);
  process.stderr.write(`[${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}] ${line}\n`);
}
const warnings: string[] = [];
function warn(w: string): void {
  warnings.push(w);
  log(`warning: ${w}`);
}
function childWarnings(role: string, r: Record<string, unknown>): void {
  for (const w of (r.warnings as string[] | undefined) ?? []) warn(`${role}: ${w}`);
}

type Unit = 'items/s' | 'jobs/s' | 'tasks/s' | 'µs' | 'connections' | 'ms';

interface Row {
  id: string;
  section: string;
  impl: string;
  what: string;
  unit: Unit;
  values: number[];
  /** Row ids to divide by. */
  vsBull?: string;
  vsLocal?: string;
  error?: string;
  note?: string;
}

const rows = new Map<string, Row>();
function row(r: Omit<Row, 'values'>): Row {
  const existing = rows.get(r.id);
  if (existing !== undefined) return existing;
  const made = { ...r, values: [] };
  rows.set(r.id, made);
  return made;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function fmt(v: number, unit: Unit): string {
  if (unit === 'µs' || unit === 'ms')
    return v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(v >= 10 ? 1 : 2);
  if (unit === 'connections') return String(v);
  return Math.round(v).toLocaleString('en-US');
}

function ratio(r: Row, refId: string | undefined): string {
  if (refId === undefined) return '';
  if (refId === r.id) return 'ref';
  const ref = rows.get(refId);
  if (ref === undefined || ref.values.length === 0 || r.values.length === 0) return 'n/a';
  const x = median(r.values) / median(ref.values);
  return `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}×`;
}

// ---- cases --------------------------------------------------------------------------------------------------

let runId = 0;
const qname = (what: string) => `bench-${what}-${process.pid}-${++runId}`;

/** Case 1, mpthreads/redis: consumer items/s (first get to last) and producer items/s (puts + flush). */
async function redisSpsc(url: string, payload: string): Promise<{ consumer: number; producer: number }> {
  return withChildren(async (spawnChild) => {
    const queue = qname(`spsc-${payload}`);
    const consumer = spawnChild('redis-consumer', { url, queue, n: N, payload });
    const producer = spawnChild('redis-producer', { url, queue, n: N, payload, kind: 'Queue' });
    await Promise.all([consumer.waitFor('ready', 30_000), producer.waitFor('ready', 30_000)]);
    producer.send('go');
    const c = await consumer.waitFor('result', stepTimeout(N));
    const p = await producer.waitFor('result', 30_000);
    childWarnings('redis-consumer', c);
    childWarnings('redis-producer', p);
    if (c.ok !== true) throw new Error(`redis-consumer: wrong checksum (${c.sum} for ${N} items)`);
    return { consumer: N / (c.seconds as number), producer: N / (p.seconds as number) };
  });
}

/** Case 1, BullMQ: jobs processed/s (first processor call to N-th completed) and addBulk jobs/s. */
async function bullSpsc(url: string, payload: string): Promise<{ consumer: number; producer: number }> {
  return withChildren(async (spawnChild) => {
    const queue = qname(`bull-spsc-${payload}`);
    const consumer = spawnChild('bull-consumer', { url, queue, n: N, payload, concurrency: BULL_CONCURRENCY });
    const producer = spawnChild('bull-producer', { url, queue, n: N, payload, chunk: BULL_CHUNK });
    await Promise.all([consumer.waitFor('ready', 30_000), producer.waitFor('ready', 30_000)]);
    producer.send('go');
    const c = await consumer.waitFor('result', stepTimeout(N) * 2);
    const p = await producer.waitFor('result', 30_000);
    childWarnings('bull-consumer', c);
    childWarnings('bull-producer', p);
    if (c.ok !== true) throw new Error(`bull-consumer: wrong checksum or ${c.failed} failed jobs`);
    return { consumer: N / (c.seconds as number), producer: N / (p.seconds as number) };
  });
}

async function localSpsc(payload: string): Promise<number> {
  return withChildren(async (spawnChild) => {
    const r = await spawnChild('local-spsc', { n: N, payload }).waitFor('result', stepTimeout(N));
    if (r.ok !== true) throw new Error('local-spsc: wrong checksum');
    return N / (r.seconds as number);
  });
}

/** Case 2, mpthreads/redis: a producer process, 2 consumer processes (`loops` get->taskDone loops each), join() here. */
async function redisFanout(url: string, loops: number): Promise<number> {
  const { connect } = await import('../lib/redis/index.ts');
  return withChildren(async (spawnChild) => {
    const queue = qname(`fanout-${loops}`);
    const workers = [0, 1].map(() => spawnChild('redis-fanout', { url, queue, loops }));
    const producer = spawnChild('redis-producer', { url, queue, n: N, payload: 'int', kind: 'JoinableQueue' });
    await Promise.all([...workers, producer].map((c) => c.waitFor('ready', 30_000)));
    const ctx = await connect(url);
    try {
      const jq = ctx.JoinableQueue<number | null>(queue);
      await jq.flush();
      const t0 = performance.now();
      producer.send('go');
      await producer.waitFor('flushed', stepTimeout(N));
      await jq.join({ timeout: stepTimeout(N) });
      const seconds = (performance.now() - t0) / 1000;
      // Stop the loops: one null task each.
      for (let i = 0; i < 2 * loops; i++) await jq.put(null);
      await jq.flush();
      let count = 0;
      for (const w of workers) {
        const r = await w.waitFor('result', 60_000);
        childWarnings('redis-fanout', r);
        count += r.count as number;
      }
      childWarnings('redis-producer', await producer.waitFor('result', 30_000));
      // At least once: a redelivered task would be counted twice, a lost one would have hung join().
      if (count !== N) warn(`redis fanout (${loops} loops/process): the workers did ${count} tasks for ${N} put`);
      return N / seconds;
    } finally {
      await ctx.close();
    }
  });
}

async function bullFanout(url: string): Promise<number> {
  const { Queue } = await bullInMain(url);
  return withChildren(async (spawnChild) => {
    const queue = qname('bull-fanout');
    const workers = [0, 1].map(() =>
      spawnChild('bull-consumer', { url, queue, n: 0, payload: 'int', concurrency: BULL_CONCURRENCY }),
    );
    const producer = spawnChild('bull-producer', { url, queue, n: N, payload: 'int', chunk: BULL_CHUNK });
    await Promise.all([...workers, producer].map((c) => c.waitFor('ready', 30_000)));
    const q = new Queue(queue, { connection: { url } });
    try {
      await q.waitUntilReady();
      const t0 = performance.now();
      producer.send('go');
      await producer.waitFor('flushed', stepTimeout(N));
      // The mirror of join(): poll until nothing is waiting or active (1 ms, doubling to 25 ms, as join() does).
      const deadline = Date.now() + stepTimeout(N) * 2;
      let poll = 1;
      for (;;) {
        const c = await q.getJobCounts('wait', 'active', 'delayed', 'prioritized', 'waiting-children', 'failed');
        if ((c.failed ?? 0) > 0) throw new Error(`BullMQ fanout: ${c.failed} jobs failed`);
        const left =
          (c.wait ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0) + (c['waiting-children'] ?? 0);
        if (left === 0) break;
        if (Date.now() > deadline) throw new Error(`BullMQ fanout: ${left} jobs still unfinished (hung?)`);
        await sleep(poll);
        poll = Math.min(poll * 2, 25);
      }
      const seconds = (performance.now() - t0) / 1000;
      let count = 0;
      for (const w of workers) {
        w.send('stop');
        const r = await w.waitFor('result', 30_000);
        childWarnings('bull-consumer', r);
        count += r.count as number;
      }
      childWarnings('bull-producer', await producer.waitFor('result', 30_000));
      if (count !== N) warn(`BullMQ fanout: the workers completed ${count} jobs for ${N} added`);
      return N / seconds;
    } finally {
      await q.close();
    }
  });
}

async function localFanout(): Promise<number> {
  return withChildren(async (spawnChild) => {
    const r = await spawnChild('local-fanout', { n: N }).waitFor('result', stepTimeout(N));
    if (r.ok !== true) throw new Error(`local-fanout: ${r.count} tasks done for ${N}`);
    return N / (r.seconds as number);
  });
}

interface Latency {
  p50us: number;
  p99us: number;
}

async function roundtrip(pinger: string, ponger: string, o: Record<string, unknown>): Promise<Latency> {
  return withChildren(async (spawnChild) => {
    const b = spawnChild(ponger, o);
    const a = spawnChild(pinger, { ...o, n: ROUND_TRIPS, warmup: WARMUP });
    await Promise.all([a.waitFor('ready', 30_000), b.waitFor('ready', 30_000)]);
    a.send('go');
    const r = await a.waitFor('result', 60_000 + (ROUND_TRIPS + WARMUP) * 50);
    childWarnings(pinger, r);
    childWarnings(ponger, await b.waitFor('result', 30_000));
    return { p50us: r.p50us as number, p99us: r.p99us as number };
  });
}

async function localRoundtrip(): Promise<Latency> {
  return withChildren(async (spawnChild) => {
    const r = await spawnChild('local-roundtrip', { n: ROUND_TRIPS, warmup: WARMUP }).waitFor('result', 120_000);
    return { p50us: r.p50us as number, p99us: r.p99us as number };
  });
}

/** Ids of the clients connected now, with the command each last ran. */
async function clients(inspector: Inspector): Promise<Map<string, string>> {
  const list = String(await inspector.sendCommand(['CLIENT', 'LIST']));
  const out = new Map<string, string>();
  for (const line of list.split('\n')) {
    const id = /(?:^| )id=(\d+)/.exec(line)?.[1];
    if (id !== undefined) out.set(id, /(?:^| )cmd=(\S+)/.exec(line)?.[1] ?? '?');
  }
  return out;
}

/** Waits (up to 3 s) until only the inspector is connected, so a count sees one process's connections. */
async function settle(inspector: Inspector): Promise<Map<string, string>> {
  const until = Date.now() + 3_000;
  let c = await clients(inspector);
  while (c.size > 1 && Date.now() < until) {
    await sleep(50);
    c = await clients(inspector);
  }
  return c;
}

function opened(before: Map<string, string>, after: Map<string, string>): { n: number; cmds: string } {
  const cmds: string[] = [];
  for (const [id, cmd] of after) if (!before.has(id) && cmd !== 'client|list') cmds.push(cmd);
  const counted = new Map<string, number>();
  for (const c of cmds) counted.set(c, (counted.get(c) ?? 0) + 1);
  return {
    n: cmds.length,
    cmds: [...counted].map(([c, k]) => (k > 1 ? `${c}×${k}` : c)).join(', '),
  };
}

/** Case 4, mpthreads/redis: connections of a process with 1,000 gets waiting; then how fast they are all served. */
async function redisBlockedGets(
  url: string,
  inspector: Inspector,
): Promise<{ conns: number; cmds: string; blocked: number; servedMs: number }> {
  const { connect } = await import('../lib/redis/index.ts');
  return withChildren(async (spawnChild) => {
    const queue = qname('blocked');
    const before = await settle(inspector);
    const child = spawnChild('redis-blocked-gets', { url, queue, gets: BLOCKED_GETS });
    const ready = await child.waitFor('ready', 30_000);
    if ((ready.servedEarly as number) !== 0) throw new Error(`${ready.servedEarly} gets resolved on an empty queue`);
    const after = await clients(inspector);
    const info = String(await inspector.sendCommand(['INFO', 'clients']));
    const blocked = Number(/blocked_clients:(\d+)/.exec(info)?.[1] ?? Number.NaN);
    const { n, cmds } = opened(before, after);
    // Now serve them: this process puts 1,000 items.
    const ctx = await connect(url);
    try {
      const q = ctx.Queue<number>(queue);
      const t0 = performance.now();
      for (let i = 0; i < BLOCKED_GETS; i++) await q.put(i);
      await q.flush();
      const r = await child.waitFor('result', 60_000);
      const servedMs = performance.now() - t0;
      childWarnings('redis-blocked-gets', r);
      if (r.ok !== true || r.served !== BLOCKED_GETS) throw new Error(`blocked gets: ${r.served} served, ok=${r.ok}`);
      return { conns: n, cmds, blocked, servedMs };
    } finally {
      await ctx.close();
    }
  });
}

async function bullIdleWorker(url: string, inspector: Inspector): Promise<{ conns: number; cmds: string }> {
  return withChildren(async (spawnChild) => {
    const before = await settle(inspector);
    const child = spawnChild('bull-idle-worker', { url, queue: qname('bull-idle'), concurrency: BLOCKED_GETS });
    await child.waitFor('ready', 30_000);
    const { n, cmds } = opened(before, await clients(inspector));
    child.send('stop');
    childWarnings('bull-idle-worker', await child.waitFor('result', 30_000));
    return { conns: n, cmds };
  });
}

type Inspector = ReturnType<typeof createClient>;

let bullLoaded: typeof import('bullmq') | undefined;
async function bullInMain(url: string): Promise<typeof import('bullmq')> {
  if (bullLoaded === undefined) {
    bullLoaded = await import('bullmq');
    const b = bullLoaded;
    b.RedisConnection.clientFactory = () => b.createNodeRedisClient(createClient({ url }));
  }
  return bullLoaded;
}

// ---- the run ------------------------------------------------------------------------------------------------

async function attempt(label: string, rowIds: string[], body: () => Promise<void>): Promise<void> {
  const t0 = performance.now();
  try {
    await body();
    log(`${label}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    log(`${label}: FAILED: ${message}`);
    for (const id of rowIds) {
      const r = rows.get(id);
      if (r !== undefined && r.error === undefined) r.error = message.split('\n')[0]!;
    }
  }
}

async function main(): Promise<void> {
  const load0 = os.loadavg();
  let server: RedisServer | undefined;
  let inspector: Inspector | undefined;
  let reaper: ChildProcess | undefined;
  try {
    server = await startRedis();
    reaper = reap(server.pid);
    const url = server.url;
    inspector = createClient({ url, RESP: 2 });
    inspector.on('error', () => {});
    await inspector.connect();
    const redisVersion = /redis_version:(\S+)/.exec(String(await inspector.sendCommand(['INFO', 'server'])))?.[1];
    log(
      `redis-server ${redisVersion} at ${url}; N=${N.toLocaleString('en-US')}, up to ${REPS} round(s)${quick ? ' (--quick)' : ''}`,
    );
    const flush = async () => {
      await inspector!.sendCommand(['FLUSHALL']);
    };

    // Every case's rows, declared up front so the table keeps this order whatever runs.
    type Trial = { label: string; rowIds: string[]; run: () => Promise<void> };
    const trials: Trial[] = [];

    // Case 1: spsc throughput.
    for (const payload of ['int', 'object']) {
      const sec = `1${payload === 'int' ? 'a' : 'b'}. spsc ${payload}s`;
      const itemWord = payload === 'int' ? 'ints' : 'objects';
      const rc = row({
        id: `spsc-${payload}-redis`,
        section: sec,
        impl: 'mpthreads/redis Queue',
        what: `consumer process: first get() → last (${N.toLocaleString('en-US')} ${itemWord}, 1 producer process)`,
        unit: 'items/s',
        vsBull: `spsc-${payload}-bull`,
        vsLocal: `spsc-${payload}-local`,
      });
      const rp = row({
        id: `spsc-${payload}-redis-put`,
        section: sec,
        impl: 'mpthreads/redis Queue',
        what: 'producer process: put() × N + flush()',
        unit: 'items/s',
        vsBull: `spsc-${payload}-bull-add`,
      });
      const bc = row({
        id: `spsc-${payload}-bull`,
        section: sec,
        impl: `BullMQ Worker (concurrency ${BULL_CONCURRENCY})`,
        what: 'worker process: first processor call → N-th completed',
        unit: 'jobs/s',
        vsBull: `spsc-${payload}-bull`,
        vsLocal: `spsc-${payload}-local`,
      });
      const bp = row({
        id: `spsc-${payload}-bull-add`,
        section: sec,
        impl: 'BullMQ Queue.addBulk',
        what: `producer process: addBulk of ${BULL_CHUNK.toLocaleString('en-US')} × N/${BULL_CHUNK.toLocaleString('en-US')}`,
        unit: 'jobs/s',
        vsBull: `spsc-${payload}-bull-add`,
      });
      const lc = row({
        id: `spsc-${payload}-local`,
        section: sec,
        impl: 'local mpthreads Queue (reference)',
        what: 'NOT cross-process: 2 worker threads of one process, first get() → last',
        unit: 'items/s',
        vsBull: `spsc-${payload}-bull`,
        vsLocal: `spsc-${payload}-local`,
      });
      trials.push(
        {
          label: `spsc ${payload} mpthreads/redis`,
          rowIds: [rc.id, rp.id],
          run: async () => {
            const r = await redisSpsc(url, payload);
            rc.values.push(r.consumer);
            rp.values.push(r.producer);
          },
        },
        {
          label: `spsc ${payload} BullMQ`,
          rowIds: [bc.id, bp.id],
          run: async () => {
            const r = await bullSpsc(url, payload);
            bc.values.push(r.consumer);
            bp.values.push(r.producer);
          },
        },
        {
          label: `spsc ${payload} local`,
          rowIds: [lc.id],
          run: async () => {
            lc.values.push(await localSpsc(payload));
          },
        },
      );
    }

    // Case 2: JoinableQueue fan-out.
    {
      const sec = '2. fan-out, 2 worker processes';
      const r1 = row({
        id: 'fanout-redis-1',
        section: sec,
        impl: 'mpthreads/redis JoinableQueue, 1 loop/process',
        what: `producer process puts ${N.toLocaleString('en-US')} ints; 2 processes loop get() → await taskDone(); go → join() resolves`,
        unit: 'tasks/s',
        vsBull: 'fanout-bull',
        vsLocal: 'fanout-local',
      });
      const r100 = row({
        id: `fanout-redis-${FANOUT_LOOPS}`,
        section: sec,
        impl: `mpthreads/redis JoinableQueue, ${FANOUT_LOOPS} loops/process`,
        what: `the same with ${FANOUT_LOOPS} concurrent get → taskDone loops per process (as BullMQ's concurrency)`,
        unit: 'tasks/s',
        vsBull: 'fanout-bull',
        vsLocal: 'fanout-local',
      });
      const b = row({
        id: 'fanout-bull',
        section: sec,
        impl: `BullMQ, 2 Workers (concurrency ${BULL_CONCURRENCY})`,
        what: 'producer process addBulk; go → no job waiting or active (polled like join())',
        unit: 'jobs/s',
        vsBull: 'fanout-bull',
        vsLocal: 'fanout-local',
      });
      const l = row({
        id: 'fanout-local',
        section: sec,
        impl: 'local mpthreads JoinableQueue (reference)',
        what: 'NOT cross-process: main thread puts, 2 worker threads get → taskDone; first put → join()',
        unit: 'tasks/s',
        vsBull: 'fanout-bull',
        vsLocal: 'fanout-local',
      });
      trials.push(
        {
          label: 'fanout mpthreads/redis 1 loop',
          rowIds: [r1.id],
          run: async () => {
            r1.values.push(await redisFanout(url, 1));
          },
        },
        {
          label: `fanout mpthreads/redis ${FANOUT_LOOPS} loops`,
          rowIds: [r100.id],
          run: async () => {
            r100.values.push(await redisFanout(url, FANOUT_LOOPS));
          },
        },
        {
          label: 'fanout BullMQ',
          rowIds: [b.id],
          run: async () => {
            b.values.push(await bullFanout(url));
          },
        },
        {
          label: 'fanout local',
          rowIds: [l.id],
          run: async () => {
            l.values.push(await localFanout());
          },
        },
      );
    }

    // Case 3: round trip latency.
    {
      const sec = '3. round trip';
      const impls = [
        {
          key: 'redis',
          impl: 'mpthreads/redis Queue',
          what: 'A: put(i) on ping, get() from pong; B: get() from ping, put() on pong',
          run: () => roundtrip('redis-pinger', 'redis-ponger', { url, ping: qname('ping'), pong: qname('pong') }),
        },
        {
          key: 'bull',
          impl: 'BullMQ, two queues',
          what: "A: add(i) on ping, its Worker on pong takes it; B's Worker on ping adds it to pong",
          run: () => roundtrip('bull-pinger', 'bull-ponger', { url, ping: qname('bping'), pong: qname('bpong') }),
        },
        {
          key: 'bull-rpc',
          impl: 'BullMQ, waitUntilFinished',
          what: "A: (await add(i)).waitUntilFinished(QueueEvents); B's Worker returns the data",
          run: () => roundtrip('bull-rpc-caller', 'bull-rpc-server', { url, queue: qname('rpc') }),
        },
        {
          key: 'local',
          impl: 'local mpthreads Queue (reference)',
          what: 'NOT cross-process: the same loops between 2 worker threads of one process',
          run: localRoundtrip,
        },
      ];
      for (const m of impls) {
        const [p50, p99] = (['p50', 'p99'] as const).map((p) =>
          row({
            id: `rt-${m.key}-${p}`,
            section: sec,
            impl: m.impl,
            what: `${p} of ${ROUND_TRIPS.toLocaleString('en-US')} round trips after ${WARMUP} warm-up; ${m.what}`,
            unit: 'µs',
            vsBull: `rt-bull-${p}`,
            vsLocal: `rt-local-${p}`,
          }),
        ) as [Row, Row];
        trials.push({
          label: `round trip ${m.impl}`,
          rowIds: [p50.id, p99.id],
          run: async () => {
            const r = await m.run();
            p50.values.push(r.p50us);
            p99.values.push(r.p99us);
          },
        });
      }
    }

    // Case 4: connections of 1,000 waiting gets (counted once: a count, not a timing).
    const once: Trial[] = [];
    {
      const sec = '4. 1,000 waiting gets';
      const rc = row({
        id: 'conns-redis',
        section: sec,
        impl: 'mpthreads/redis Queue',
        what: `connections one process opened: 1 context, ${BLOCKED_GETS.toLocaleString('en-US')} get() pending on one queue (CLIENT LIST diff)`,
        unit: 'connections',
        vsBull: 'conns-bull',
      });
      const rs = row({
        id: 'conns-redis-served',
        section: sec,
        impl: 'mpthreads/redis Queue',
        what: `then another process puts ${BLOCKED_GETS.toLocaleString('en-US')} items + flush(): until all gets resolved`,
        unit: 'ms',
      });
      const b = row({
        id: 'conns-bull',
        section: sec,
        impl: `BullMQ Worker (concurrency ${BLOCKED_GETS.toLocaleString('en-US')})`,
        what: 'connections one process opened: 1 Worker waiting on an empty queue (CLIENT LIST diff)',
        unit: 'connections',
        vsBull: 'conns-bull',
      });
      once.push(
        {
          label: '1,000 waiting gets: mpthreads/redis',
          rowIds: [rc.id, rs.id],
          run: async () => {
            const r = await redisBlockedGets(url, inspector!);
            rc.values.push(r.conns);
            rc.note = `${r.cmds}; server blocked_clients: ${r.blocked}`;
            rs.values.push(r.servedMs);
          },
        },
        {
          label: '1,000 waiting gets: BullMQ',
          rowIds: [b.id],
          run: async () => {
            const r = await bullIdleWorker(url, inspector!);
            b.values.push(r.conns);
            b.note = r.cmds;
          },
        },
      );
    }

    // Rounds: every trial once per round, so the machine's drift reaches every implementation alike. A round
    // starts only if one more (as long as the last) still fits the time budget.
    let lastRound = 0;
    for (let round = 1; round <= REPS; round++) {
      const elapsed = (performance.now() - began) / 1000;
      if (round > 1 && elapsed + lastRound > BUDGET_S) {
        warn(
          `round ${round} of ${REPS} skipped: ${elapsed.toFixed(0)} s spent and the last round took ${lastRound.toFixed(0)} s (budget ${BUDGET_S} s); rows show ${round - 1} run(s)`,
        );
        break;
      }
      const t0 = performance.now();
      for (const t of round === 1 ? [...trials, ...once] : trials) {
        await attempt(`round ${round}/${REPS} ${t.label}`, t.rowIds, t.run);
        await flush();
      }
      lastRound = (performance.now() - t0) / 1000;
    }
    runs = rows.size === 0 ? 0 : Math.max(...[...rows.values()].map((r) => r.values.length));
    const load1 = os.loadavg();
    printReport(redisVersion ?? '?', load0, load1);
  } finally {
    killAll();
    await inspector?.close().catch(() => {});
    reaper?.kill('SIGKILL');
    await server?.stop();
  }
}

/**
 * startRedis() kills its server from an 'exit' hook, which a SIGKILLed node never runs. So a shell waits on a
 * pipe from this process and kills the server when the pipe ends without a word: whenever this process dies.
 */
function reap(pid: number): ChildProcess {
  const shell = spawn('/bin/sh', ['-c', `read _ || kill -9 ${pid} 2>/dev/null`], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  live.add(shell);
  shell.once('exit', () => live.delete(shell));
  shell.stdin!.on('error', () => {});
  shell.unref();
  (shell.stdin as unknown as { unref?: () => void }).unref?.();
  return shell;
}

/** A digest of every file under lib/ (what the children import), to notice lib/ changing during the run. */
function libDigest(): string {
  const hash = createHash('sha256');
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) hash.update(path).update(readFileSync(path));
    }
  };
  walk(join(root, 'lib'));
  return hash.digest('hex').slice(0, 12);
}

function gitState(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'lib'], { cwd: root, encoding: 'utf8' }).trim();
    return `commit ${head}${dirty === '' ? '' : ' + uncommitted changes in lib/'}`;
  } catch {
    return 'commit unknown';
  }
}
const libAtStart = libDigest();
const gitAtStart = gitState();

function printReport(redisVersion: string, load0: number[], load1: number[]): void {
  const libAtEnd = libDigest();
  if (libAtEnd !== libAtStart)
    warn(
      `lib/ changed during the run (digest ${libAtStart} at start, ${libAtEnd} at end): children started after the change ran the new code, so rows may mix library versions; run again`,
    );
  const cpu = os.cpus();
  const bullVersion = (
    JSON.parse(readFileSync(join(root, 'node_modules', 'bullmq', 'package.json'), 'utf8')) as { version: string }
  ).version;
  const out: string[] = [];
  out.push(`## mpthreads/redis vs BullMQ ${bullVersion}, across processes (${quick ? '--quick' : 'full run'})`);
  out.push('');
  out.push(
    `mpthreads ${gitAtStart} (lib/ digest ${libAtStart}), node ${process.version}, redis-server ${redisVersion} on 127.0.0.1 (no persistence), ${cpu.length} × ${cpu[0]?.model ?? '?'}, ` +
      `load average ${load0[0]!.toFixed(2)} at start, ${load1[0]!.toFixed(2)} at end; ` +
      `N = ${N.toLocaleString('en-US')}; ${runs} round(s) of every case but 4 (planned ${REPS}), each row the median of its runs (spread: lowest–highest); ` +
      `${((performance.now() - began) / 1000).toFixed(0)} s in all.`,
  );
  out.push('');
  out.push('| case | implementation | what it measures | result | unit | runs | spread | vs BullMQ | vs local Queue |');
  out.push('| --- | --- | --- | ---: | --- | ---: | --- | ---: | ---: |');
  for (const r of rows.values()) {
    let result: string;
    let spread = '';
    if (r.values.length === 0) result = r.error !== undefined ? `FAILED: ${r.error.replaceAll('|', '\\|')}` : 'not run';
    else {
      result = fmt(median(r.values), r.unit);
      if (r.values.length > 1) spread = `${fmt(Math.min(...r.values), r.unit)}–${fmt(Math.max(...r.values), r.unit)}`;
      if (r.error !== undefined) spread += ` (a run failed: ${r.error.replaceAll('|', '\\|')})`;
    }
    const what = r.note === undefined ? r.what : `${r.what} [${r.note}]`;
    out.push(
      `| ${r.section} | ${r.impl} | ${what} | ${result} | ${r.unit} | ${r.values.length} | ${spread} | ${r.values.length === 0 ? '' : ratio(r, r.vsBull)} | ${r.values.length === 0 ? '' : ratio(r, r.vsLocal)} |`,
    );
  }
  out.push('');
  out.push(
    'Ratios: this row ÷ the named row, medians. For items/s, jobs/s and tasks/s higher is better (2.00× = twice as fast); for µs and connections lower is better (0.50× = half the latency).',
  );
  out.push('');
  out.push('What each case measured:');
  out.push(
    `- 1a/1b. One producer process and one consumer process, both spawned first; the consumer waits in its first get() before the producer is told to go. mpthreads/redis: the producer does \`for … await q.put(x)\` then \`await q.flush()\`; the consumer does N × \`await q.get()\` and the row is N ÷ (time of its last get − time of its first get), with every item checksummed. BullMQ: the producer adds in addBulk chunks of ${BULL_CHUNK.toLocaleString('en-US')} (removeOnComplete: true), the consumer is a Worker of concurrency ${BULL_CONCURRENCY} with a processor that only checksums job.data; its row is N ÷ (N-th 'completed' event − first processor call). The producer rows time the producer alone (go → last put flushed / last addBulk resolved). Items: ints = i; objects = { id: i, name: 'item-' + i, tags: ['a','b'], at: 1.5 }. The local reference runs the same loops between two worker threads (Process) of one process, over the in-memory Queue: no Redis, no sockets.`,
  );
  out.push(
    `- 2. One producer process puts N ints (then flush()); two worker processes loop \`await q.get(); await q.taskDone()\` (1 loop each, or ${FANOUT_LOOPS} concurrent loops each); this process sends go and stops the clock when \`join()\` on its own JoinableQueue handle resolves (join() polls the server, 1 ms doubling to 25 ms). BullMQ: the producer process addBulks N jobs, two processes run a Worker of concurrency ${BULL_CONCURRENCY}; the clock stops when getJobCounts shows no job waiting, active, delayed or prioritized, polled the same way. Local reference: the main thread of one process puts, 2 worker threads get → taskDone, join() in the main thread; no Redis.`,
  );
  out.push(
    `- 3. Process A sends i and waits for it to come back from process B, ${ROUND_TRIPS.toLocaleString('en-US')} times after ${WARMUP} untimed warm-ups; each round trip is timed in A (performance.now) and the rows are the 50th and 99th percentiles (nearest rank). mpthreads/redis over two Queues (ping, pong). BullMQ two ways: two queues, each side with a Worker (concurrency 1) on its inbound queue, the round trip ending when A's pong processor is called with i; and the RPC idiom, \`job.waitUntilFinished(queueEvents)\` on one queue whose Worker returns the data (that queue keeps its last 1,000 completed jobs, removeOnComplete: 1000, since waitUntilFinished reads the job after it completed). Local reference: the same loops between two worker threads of one process.`,
  );
  out.push(
    `- 4. One process connects, opens one Queue and calls get() ${BLOCKED_GETS.toLocaleString('en-US')} times without awaiting; 500 ms later this process diffs the server's CLIENT LIST against the list taken before the child started (only this process's inspector connection was connected) and names the new connections' last commands; blocked_clients is from INFO clients. Then this process puts ${BLOCKED_GETS.toLocaleString('en-US')} items and flushes, and the next row is the time from its first put to the child's report that all ${BLOCKED_GETS.toLocaleString('en-US')} gets resolved (checksummed). BullMQ: the connections of a process running one Worker of concurrency ${BLOCKED_GETS.toLocaleString('en-US')} on an empty queue, counted the same way.`,
  );
  if (warnings.length > 0) {
    out.push('');
    out.push('Warnings during the run:');
    for (const w of warnings) out.push(`- ${w}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

main().then(
  () => {
    process.exit(rowsFailed() ? 1 : 0);
  },
  (error) => {
    process.stderr.write(`bench/redis.ts failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  },
);

function rowsFailed(): boolean {
  for (const r of rows.values()) if (r.error !== undefined) return true;
  return false;
}
