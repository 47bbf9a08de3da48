// Queues on a server shared by separate OS processes (node child processes running
// test/fixtures/redis-child.ts), and the faults the README promises to survive: a consumer killed mid-task, a
// server restarted, a server killed with kill -9 (appendonly, appendfsync always), a server that stays away.
// Synchronisation is by what the children print and by queue items, never by sleeping.
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import * as assert from 'uvu/assert';
import { ConnectionError, ErrorCode, ProcessError, type RedisJoinableQueue } from '../../lib/redis/index.ts';
import { deadline, rejects, suite } from '../_support/harness.ts';
import { redisFixture } from '../_support/redis-fixture.ts';
import { createClient } from 'redis';
import { whenRedis } from '../_support/redis-server.ts';

const child = new URL('../fixtures/redis-child.ts', import.meta.url).pathname;

interface Child {
  process: ChildProcess;
  /** Resolves with the next JSON line it prints. */
  next(): Promise<unknown>;
  /** Resolves with its exit code (or the signal's name). */
  exited: Promise<number | string>;
}

const children = new Set<ChildProcess>();

function run(...args: string[]): Child {
  const p = spawn(process.execPath, ['--import', 'tsx', child, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(p);
  const lines: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  createInterface({ input: p.stdout! }).on('line', (line) => {
    const w = waiting.shift();
    if (w !== undefined) w(line);
    else lines.push(line);
  });
  const exited = new Promise<number | string>((resolve) =>
    p.on('exit', (code, signal) => {
      children.delete(p);
      resolve(code ?? signal ?? -1);
    }),
  );
  return {
    process: p,
    next: () =>
      new Promise((resolve) => {
        const line = lines.shift();
        if (line !== undefined) resolve(JSON.parse(line));
        else waiting.push((l) => resolve(JSON.parse(l)));
      }),
    exited,
  };
}

whenRedis(() => {
  const t = suite('redis queues across processes', 90_000);
  const fx = redisFixture(t, { appendonly: true });
  const { open, name } = fx;
  t.after.each(() => {
    for (const p of children) p.kill('SIGKILL');
  });

  t('two producer processes, two consumer processes: every item exactly once, each producer’s in order', async () => {
    const q = name('mpmc');
    const count = 2_000;
    const consumers = [run('consume', fx.server.url, q), run('consume', fx.server.url, q)];
    const producers = [
      run('produce', fx.server.url, q, '0', String(count)),
      run('produce', fx.server.url, q, '1', String(count)),
    ];
    for (const p of producers) assert.is(await p.exited, 0);
    const redis = await open();
    const queue = redis.Queue<null>(q);
    await queue.put(null);
    await queue.put(null);
    await queue.flush();
    const seen = new Set<string>();
    for (const c of consumers) {
      const last = [-1, -1];
      for (let item = await c.next(); !(item as { end?: boolean }).end; item = await c.next()) {
        const { p, i } = item as { p: number; i: number };
        assert.ok(i > last[p]!, `producer ${p}: item ${i} after ${last[p]} in one consumer`);
        last[p] = i;
        const key = `${p}:${i}`;
        assert.not.ok(seen.has(key), `${key} delivered twice`);
        seen.add(key);
      }
    }
    for (const c of consumers) assert.is(await c.exited, 0);
    assert.is(seen.size, 2 * count);
  });

  /**
   * A consumer process that asks for a 1 s visibilityTimeout gets the item in `tasks` (a handle of this
   * process) and is killed: `tasks` gets it again within 10 s, and acknowledges it.
   */
  async function killedLeaseComesBack(tasks: RedisJoinableQueue<string>): Promise<void> {
    await tasks.put('the task');
    await tasks.flush();
    const consumer = run('lease', fx.server.url, tasks.name, '1000');
    assert.equal(await consumer.next(), { got: 'the task' });
    consumer.process.kill('SIGKILL');
    assert.is(await consumer.exited, 'SIGKILL');
    const started = Date.now();
    assert.is(await tasks.get({ timeout: 20_000 }), 'the task');
    const waited = Date.now() - started;
    assert.ok(waited < 10_000, `redelivered after ${waited} ms`);
    await tasks.taskDone();
    await tasks.join({ timeout: 10_000 });
  }

  t('a consumer process killed with a leased item: the item is delivered again after visibilityTimeout', async () => {
    const redis = await open();
    await killedLeaseComesBack(redis.JoinableQueue<string>(name('lease'), { visibilityTimeout: 1_000 }));
  });

  // Found by review: a handle opened with the default (30 s) before a consumer asked for 1 s claimed that
  // consumer's expired lease only after 30 s: it learned the shorter value only from renewals of its own leases.
  t(
    'a killed consumer that asked for a shorter visibilityTimeout: its item comes back after it, to any handle',
    async () => {
      const redis = await open();
      await killedLeaseComesBack(redis.JoinableQueue<string>(name('lease-shorter'))); // the default, 30 s
    },
  );

  t('a consumer process that ends without close() gives back what it read ahead', async () => {
    const q = name('no-close');
    const redis = await open();
    const queue = redis.Queue<number>(q);
    for (let i = 0; i < 100; i++) await queue.put(i);
    await queue.flush();
    const consumer = run('take', fx.server.url, q, '10');
    assert.equal(await consumer.next(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.is(await consumer.exited, 0);
    assert.is(await queue.qsize(), 90);
    for (let i = 10; i < 100; i++) assert.is(await queue.get({ timeout: 5_000 }), i);
  });

  t('an expired lease behind eleven live ones is delivered again', async () => {
    const q = name('lease-behind');
    const redis = await open();
    const tasks = redis.JoinableQueue<number>(q, { visibilityTimeout: 1_000 });
    for (let i = 0; i < 12; i++) await tasks.put(i);
    await tasks.flush();
    // Eleven leases held (and renewed) by a live context: the head of the pending list.
    const holder = (await open()).JoinableQueue<number>(q);
    for (let i = 0; i < 11; i++) assert.is(await holder.get({ timeout: 5_000 }), i);
    const consumer = run('lease', fx.server.url, q, '1000');
    assert.equal(await consumer.next(), { got: 11 });
    consumer.process.kill('SIGKILL');
    await consumer.exited;
    assert.is(await tasks.get({ timeout: 20_000 }), 11);
  });

  t('JoinableQueue fan-out to two worker processes: join() resolves when every task is done', async () => {
    const q = name('fan-out');
    const results = name('results');
    const redis = await open();
    const tasks = redis.JoinableQueue<number | null>(q, { visibilityTimeout: 30_000 });
    const out = redis.Queue<number>(results);
    const workers = [run('work', fx.server.url, q, results, '30000'), run('work', fx.server.url, q, results, '30000')];
    for (let i = 0; i < 500; i++) await tasks.put(i);
    await tasks.join({ timeout: 60_000 });
    let sum = 0;
    for (let i = 0; i < 500; i++) sum += await out.get({ timeout: 10_000 });
    assert.is(sum, 2 * ((499 * 500) / 2));
    await tasks.put(null);
    await tasks.put(null);
    for (const w of workers) assert.is(await w.exited, 0);
  });

  t('kill -9 of the server (appendonly, appendfsync always): nothing flushed is lost; clients reconnect', async () => {
    const redis = await open();
    const q = redis.Queue<number>(name('durable'));
    for (let i = 0; i < 1_000; i++) await q.put(i);
    await q.flush();
    await fx.server.kill9();
    await fx.server.restart();
    // The same context: node-redis reconnects by itself.
    const got: number[] = [];
    for (let i = 0; i < 1_000; i++) got.push(await q.get({ timeout: 20_000 }));
    assert.equal(
      got,
      Array.from({ length: 1_000 }, (_, i) => i),
    );
    await q.put(1_000);
    assert.is(await q.get({ timeout: 10_000 }), 1_000);
  });

  t('a server that stays away: calls reject with ConnectionError naming the URL within 10 s', async () => {
    const redis = await open();
    const q = redis.Queue<number>(name('lost'));
    await q.put(1);
    await q.flush();
    const j = redis.JoinableQueue<number>(name('lost-joinable'));
    await j.put(1);
    await j.put(2);
    assert.is(await j.get({ timeout: 10_000 }), 1, 'leased, to be marked done while the server is away');
    assert.is(await j.get({ timeout: 10_000 }), 2);
    const waiting = q.get({ timeout: 60_000 });
    assert.is(await waiting, 1);
    const blocked = rejects(q.get({ timeout: 60_000 }), ConnectionError, 'a get waiting when the server died');
    await fx.server.kill9();
    let started = Date.now();
    const error = await blocked;
    assert.ok(Date.now() - started < 10_000, `the waiting get failed after ${Date.now() - started} ms`);
    assert.match(error.message, String(fx.server.port));
    started = Date.now();
    const away = await rejects(q.qsize(), ConnectionError, 'qsize with the server away');
    // It resolved at once, buffered, even 10 s after the loss (found by an audit).
    await rejects(j.taskDone(), ConnectionError, 'taskDone with the server away');
    // Each says why: the client's timeout has no message of its own, and it said 'cannot reach <url>: '.
    for (const e of [error, away]) assert.match(e.message, /^cannot reach redis:\/\/[^ ]+: \S/);
    assert.ok(Date.now() - started < 10_000, `qsize failed after ${Date.now() - started} ms`);
    const bounded = redis.Queue<number>(name('lost-bounded'), { maxsize: 1 });
    started = Date.now();
    await rejects(bounded.put(1), ConnectionError, 'a bounded put with the server away');
    assert.ok(Date.now() - started < 10_000, `the bounded put failed after ${Date.now() - started} ms`);
    await fx.server.restart();
    // The link still takes the server for lost: each taskDone() first sees whether it is back. Three made
    // together take the two leases (they stayed), and the third has none (it threw a TypeError).
    const acks = await Promise.allSettled([j.taskDone(), j.taskDone(), j.taskDone()]);
    assert.equal(
      acks.map((a) => a.status),
      ['fulfilled', 'fulfilled', 'rejected'],
    );
    const tooMany = (acks[2] as PromiseRejectedResult).reason as ProcessError;
    assert.instance(tooMany, ProcessError);
    assert.is(tooMany.code, ErrorCode.TaskDoneTooMany);
    assert.is(await q.qsize(), 0, 'works again once the server is back');
    await deadline(j.join(), 20_000, 'join() once the leases are done');
  });

  t('a program that forgets close() exits by itself after its server went away', async () => {
    // node-redis tried to reconnect for good on a timer that keeps the process alive, and 'beforeExit' tried
    // to send what was owed again and again: neither program below exited (found by a SPEC audit).
    for (const mode of ['idle', 'put']) {
      const c = run('forget', fx.server.url, name(`forget-${mode}`), mode);
      assert.equal(await c.next(), { ready: true });
      await fx.server.kill9();
      c.process.stdin!.write('go\n');
      assert.equal(await c.next(), mode === 'put' ? { put: 'ConnectionError' } : { idle: true });
      assert.is(await deadline(c.exited, 30_000, `the exit (${mode})`), 0);
      await fx.server.restart();
    }
    // With a JoinableQueue lease: its renewals kept the program alive for good (found by review).
    const c = run('lease-lost', fx.server.url, name('forget-lease'));
    assert.equal(await c.next(), { ready: true });
    await fx.server.kill9();
    c.process.stdin!.write('go\n');
    assert.ok('done' in ((await c.next()) as object), 'taskDone() settled');
    assert.is(await deadline(c.exited, 30_000, 'the exit (lease)'), 0);
    await fx.server.restart();
  });

  t('the README example: a producer process and two worker processes (examples/redis/)', async () => {
    const examples = new URL('../../examples/redis/', import.meta.url).pathname;
    const env = { ...process.env, REDIS_URL: fx.server.url };
    const start = (file: string, ...args: string[]) => {
      const p = spawn(process.execPath, ['--import', 'tsx', `${examples}${file}`, ...args], {
        env,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.add(p);
      let out = '';
      p.stdout!.on('data', (chunk: Buffer) => {
        out += chunk;
      });
      return new Promise<{ code: number | null; out: string }>((resolve) =>
        p.on('exit', (code) => {
          children.delete(p);
          resolve({ code, out });
        }),
      );
    };
    const workers = [start('worker.ts'), start('worker.ts')];
    const producer = await start('producer.ts', '2');
    assert.is(producer.code, 0);
    assert.is(producer.out.trim(), `sum of squares 1..1000 = ${(1000 * 1001 * 2001) / 6}`);
    for (const w of await Promise.all(workers)) assert.is(w.code, 0);
  });

  t.run();

  const loading = suite('redis: a server restarting from its data', 90_000);
  const slow = redisFixture(loading, { appendonly: true, keyLoadDelayUs: 25, debug: true });
  loading(
    'a get waiting while the restarted server answers LOADING waits on, or rejects with ConnectionError (it failed with "Redis: LOADING")',
    async () => {
      const redis = await slow.open();
      const q = redis.Queue<number>(slow.name('loading'));
      // Ballast in the AOF's RDB base, which the restarted server loads at 25 µs a key (a few seconds).
      const raw = createClient({ url: slow.server.url });
      raw.on('error', () => {});
      await raw.connect();
      await raw.sendCommand(['DEBUG', 'POPULATE', '80000']);
      await raw.sendCommand(['BGREWRITEAOF']);
      for (;;) {
        const info = String(await raw.sendCommand(['INFO', 'persistence']));
        if (info.includes('aof_rewrite_in_progress:0') && info.includes('aof_rewrite_scheduled:0')) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await raw.close();
      const waiting = deadline(q.get(), 40_000, 'the waiting get').then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      );
      await slow.server.kill9();
      const restarting = slow.server.restart();
      // Puts from this context, as a producer goes on putting, until one lands.
      for (let landed = false; !landed; ) {
        try {
          await q.put(42);
          await q.flush();
          landed = true;
        } catch (error) {
          assert.instance(error, ConnectionError, `a put while the server restarts: ${error}`);
          await new Promise((resolve) => setTimeout(resolve, 300));
        }
      }
      const outcome = await waiting;
      if ('error' in outcome) assert.instance(outcome.error, ConnectionError, String(outcome.error));
      else assert.is(outcome.value, 42);
      await restarting;
    },
  );
  loading.run();
});
