// The queue contract every engine keeps, written once and run per engine (lib/queue/backend.ts: the local hub
// today; Redis next). A new engine adds a line to the list of engines, not tests of its own for shared
// behaviour. Every call is awaited: what is synchronous on one engine (qsize, putNowait) may be a Promise on
// another. Synchronisation is by handshake (a queue item), never by sleeping.
import * as assert from 'uvu/assert';
import { ClosedError, Empty, Full, ProcessError, TimeoutError, type Process } from '../../lib/index.ts';
import { openQueues, rejects, suite } from '../_support/harness.ts';

/** The calls of a queue the suite uses; `T | Promise<T>` where an engine may answer either way. */
export interface AnyQueue<T> {
  put(item: T, options?: { timeout?: number; signal?: AbortSignal; transfer?: ArrayBuffer[] }): Promise<void>;
  putNowait(item: T): void | Promise<void>;
  get(options?: { timeout?: number; signal?: AbortSignal }): Promise<T>;
  getNowait(): T | Promise<T>;
  qsize(): number | Promise<number>;
  empty(): boolean | Promise<boolean>;
  full(): boolean | Promise<boolean>;
  flush(): Promise<void>;
  joinThread(): Promise<void>;
  cancelJoinThread(): void;
  close(): void | Promise<void>;
}
export interface AnyJoinableQueue<T> extends AnyQueue<T> {
  taskDone(): void | Promise<void>;
  join(options?: { timeout?: number; signal?: AbortSignal }): Promise<void>;
}
export interface AnySimpleQueue<T> {
  put(item: T): Promise<void>;
  get(options?: { timeout?: number }): Promise<T>;
  empty(): boolean | Promise<boolean>;
  close(): void | Promise<void>;
}

/** An engine under test: how to open each kind of queue, and how to start a worker that holds them. */
export interface Engine {
  name: string;
  Queue<T>(options?: { maxsize?: number }): AnyQueue<T>;
  JoinableQueue<T>(options?: { maxsize?: number }): AnyJoinableQueue<T>;
  SimpleQueue<T>(): AnySimpleQueue<T>;
  /** Starts `target` of test/fixtures/conformance-tasks.ts with `args` (queue handles in them work there). */
  start(target: string, args: unknown[]): Process;
  /** Runs before the suite (an engine that needs a server starts it here) and after it. */
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
}

export function queueConformance(engine: Engine): void {
  const t = suite(`queue conformance: ${engine.name}`);
  const { open } = openQueues(t);
  if (engine.setup !== undefined) t.before(engine.setup);
  if (engine.teardown !== undefined) t.after(engine.teardown);

  t('FIFO; qsize, empty and full at maxsize 0, 1 and 3; nowait forms say Full and Empty', async () => {
    for (const maxsize of [0, 1, 3]) {
      const q = open(engine.Queue<number>({ maxsize }));
      const what = `maxsize=${maxsize}`;
      assert.is(await q.empty(), true, what);
      const n = maxsize === 0 ? 5 : maxsize;
      for (let i = 0; i < n; i++) await q.put(i);
      assert.is(await q.qsize(), n, what);
      assert.is(await q.full(), maxsize > 0, what);
      if (maxsize > 0) {
        try {
          await q.putNowait(99);
          assert.unreachable(`${what}: putNowait on a full queue`);
        } catch (error) {
          assert.ok(error instanceof Full, `${what}: ${String(error)}`);
        }
        await rejects(q.put(99, { timeout: 20 }), Full, `${what}: put(timeout) on a full queue`);
      }
      for (let i = 0; i < n; i++) assert.is(await q.get(), i, what);
      assert.is(await q.empty(), true, what);
      try {
        await q.getNowait();
        assert.unreachable(`${what}: getNowait on an empty queue`);
      } catch (error) {
        assert.ok(error instanceof Empty, `${what}: ${String(error)}`);
      }
      await rejects(q.get({ timeout: 20 }), Empty, `${what}: get(timeout) on an empty queue`);
    }
  });

  t(
    'an item is captured at put; one that cannot be copied fails there with DataCloneError, nothing added',
    async () => {
      const q = open(engine.Queue<unknown>());
      const item = { list: [1], map: new Map([['k', 1]]) };
      await q.put(item);
      item.list.push(2);
      item.map.set('k', 2);
      const error = await rejects(q.put({ f: () => 1 }), DOMException, 'put(function)');
      assert.is(error.name, 'DataCloneError');
      assert.is(await q.qsize(), 1);
      const got = (await q.get()) as typeof item;
      assert.equal(got.list, [1]);
      assert.is(got.map.get('k'), 1);
    },
  );

  t('values of every structured-clone kind round-trip', async () => {
    const q = open(engine.Queue<unknown>());
    const shared = { s: 1 };
    const sparse: unknown[] = [];
    sparse[10] = 'x';
    const values = [
      0,
      -0,
      NaN,
      2 ** 53,
      1n,
      -(2n ** 70n),
      'é€😀\ud800',
      null,
      undefined,
      true,
      { a: [1, { b: 'c' }] },
      [shared, shared],
      sparse,
      new Date(5),
      /re/gi,
      new Map([[1, { m: 2 }]]),
      new Set(['s']),
      new Uint8Array([1, 2]),
      new Float64Array([1.5]),
      new Error('e', { cause: 1 }),
      new TypeError('t'),
      Object(3n),
    ];
    for (const v of values) await q.put(v);
    for (const v of values) {
      const got = await q.get();
      assert.equal(got, structuredClone(v), `${Object.prototype.toString.call(v)} ${String(v)}`);
    }
    const [first, second] = await (async () => {
      await q.put([shared, shared]);
      return (await q.get()) as object[];
    })();
    assert.ok(first === second, 'aliasing within an item is kept');
  });

  t('close(): waiting calls reject with ClosedError, later calls too; close is idempotent', async () => {
    const q = engine.Queue<number>({ maxsize: 1 });
    await q.put(1);
    const blockedPut = q.put(2);
    const other = engine.Queue<number>();
    const blockedGet = other.get();
    await q.close();
    await other.close();
    await rejects(blockedPut, ClosedError, 'a put waiting for a slot');
    await rejects(blockedGet, ClosedError, 'a get waiting for an item');
    // The SPEC's words, on every engine (a Redis queue's named the queue too).
    assert.is((await rejects(q.put(3), ClosedError, 'put after close')).message, 'queue is closed');
    assert.is((await rejects(q.get(), ClosedError, 'get after close')).message, 'queue is closed');
    // As Python's empty() after close() (CPython's test_closed_queue_empty_exceptions), on every kind.
    const simple = engine.SimpleQueue<number>();
    const joinable = engine.JoinableQueue<number>();
    await simple.put(1);
    await joinable.put(1);
    await simple.close();
    await joinable.close();
    for (const [what, closed] of [
      ['Queue', q],
      ['JoinableQueue', joinable],
      ['SimpleQueue', simple],
    ] as const)
      await rejects((async () => closed.empty())(), ClosedError, `${what}: empty() after close`);
    await q.close();
  });

  t('get() and put() honour an AbortSignal; bad options are TypeErrors naming them', async () => {
    const q = open(engine.Queue<number>({ maxsize: 1 }));
    const controller = new AbortController();
    const get = q.get({ signal: controller.signal });
    controller.abort(new Error('stop'));
    assert.is((await rejects(get, Error, 'get aborted')).message, 'stop');
    await q.put(1);
    const again = new AbortController();
    const put = q.put(2, { signal: again.signal });
    again.abort(new Error('stop put'));
    assert.is((await rejects(put, Error, 'put aborted')).message, 'stop put');
    await rejects(q.get({ timeout: -1 }), RangeError, 'get({ timeout: -1 })');
    assert.match(
      (await rejects(q.get({ wait: 1 } as never), TypeError, 'get({ wait })')).message,
      /unknown option "wait"/,
    );
    assert.is(await q.qsize(), 1);
  });

  t("four producers in workers, one consumer here: every item once, each producer's in put order", async () => {
    const q = open(engine.Queue<{ p: number; i: number }>({ maxsize: 16 }));
    const n = 500;
    const producers = [0, 1, 2, 3].map((id) => engine.start('produce', [q, id, n]));
    const next = [0, 0, 0, 0];
    for (let k = 0; k < 4 * n; k++) {
      const { p, i } = await q.get({ timeout: 30_000 });
      assert.is(i, next[p], `producer ${p}: got ${i}, expected ${next[p]}`);
      next[p]++;
    }
    for (const p of producers) {
      await p.join();
      assert.is(p.exitCode, 0, String(p.error));
    }
    assert.equal(next, [n, n, n, n]);
    assert.is(await q.qsize(), 0);
  });

  t('JoinableQueue: workers mark items done and join() resolves; taskDone() too many; join() times out', async () => {
    const tasks = open(engine.JoinableQueue<number | null>());
    const results = open(engine.Queue<number>());
    const workers = [0, 1].map(() => engine.start('doubleAndMarkDone', [tasks, results]));
    for (let i = 0; i < 20; i++) await tasks.put(i);
    await tasks.join({ timeout: 30_000 });
    assert.is(await results.qsize(), 20, 'every result is there when join() resolves');
    for (const _ of workers) await tasks.put(null);
    await tasks.join({ timeout: 30_000 });
    for (const w of workers) {
      await w.join();
      assert.is(w.exitCode, 0, String(w.error));
    }
    let sum = 0;
    for (let i = 0; i < 20; i++) sum += await results.get();
    assert.is(sum, 2 * 190);
    try {
      await tasks.taskDone();
      assert.unreachable('taskDone() with nothing unfinished');
    } catch (error) {
      assert.ok(error instanceof ProcessError && error.code === 'ERR_TASK_DONE_TOO_MANY', String(error));
      assert.is((error as Error).message, 'taskDone() called too many times', "the SPEC's words, on every engine");
    }
    await tasks.put(1);
    await rejects(tasks.join({ timeout: 20 }), TimeoutError, 'join() with a task unfinished');
  });

  t("the local Queue's whole method set: put takes `transfer`, joinThread() and cancelJoinThread()", async () => {
    const q = open(engine.Queue<Uint8Array>());
    const bytes = new Uint8Array([1, 2, 3]);
    await q.put(bytes, { transfer: [bytes.buffer] });
    await q.joinThread();
    q.cancelJoinThread();
    assert.equal([...(await q.get({ timeout: 30_000 }))], [1, 2, 3]);
    await rejects(q.put(bytes, { transfer: 'no' as never }), TypeError, 'a transfer list that is not an array');
  });

  t('SimpleQueue: put, get, empty, close, across a worker', async () => {
    const from = open(engine.SimpleQueue<string>());
    const to = open(engine.SimpleQueue<string>());
    const w = engine.start('relay', [from, to]);
    assert.is(await to.empty(), true);
    await from.put('hello');
    assert.is(await to.get({ timeout: 30_000 }), 'hello');
    await w.join();
    assert.is(w.exitCode, 0, String(w.error));
  });

  t.run();
}
