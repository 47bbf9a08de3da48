// The blocking forms of the queues: getSync, putSync, joinSync. Same values and errors as the async forms
// (falsy items, Empty/Full on timeout, ClosedError), a blocking consumer and producer in workers, a bounded
// queue that blocks its producer until a consumer takes, and blocking round trips with nothing lost.
import * as assert from 'uvu/assert';
import { ClosedError, Empty, Full, JoinableQueue, ProcessError, Queue, TimeoutError } from '../../lib/index.ts';
import { openQueues, startTask, suite, throws } from '../_support/harness.ts';
import { runTsProgram } from '../_support/run-program.ts';

const tasks = new URL('../fixtures/queue-tasks.ts', import.meta.url);
const t = suite('queues: blocking calls', 60_000);
const { open } = openQueues(t);

const falsy = [0, '', null, undefined, false, -0, 0n];

t('getSync returns falsy items as they are; putSync then getSync in one thread', () => {
  const q = open(new Queue<unknown>());
  for (const value of falsy) {
    q.putSync(value);
    assert.ok(Object.is(q.getSync({ timeout: 10_000 }), value), String(value));
  }
  assert.is(q.qsize(), 0);
});

t('getSync throws Empty after its timeout; putSync on a full queue throws Full after its timeout', () => {
  const q = open(new Queue<number>({ maxsize: 1 }));
  let start = performance.now();
  throws(() => q.getSync({ timeout: 30 }), Empty);
  assert.ok(performance.now() - start >= 29);
  q.putSync(1);
  start = performance.now();
  throws(() => q.putSync(2, { timeout: 30 }), Full);
  assert.ok(performance.now() - start >= 29);
  throws(() => q.putSync(2, { timeout: 0 }), Full);
  assert.is(q.getSync({ timeout: 0 }), 1);
  throws(() => q.getSync({ timeout: -1 }), RangeError);
  throws(() => q.getSync({ signal: new AbortController().signal } as never), TypeError);
});

t('putSync with a transfer list fails at the call on an item that cannot be copied, full queue or not', () => {
  // With a transfer list it was captured only once a slot was free: Full after the timeout, or a DataCloneError
  // after waiting for a consumer (found by review). put() and putNowait() fail at the call.
  const q = open(new Queue<unknown>({ maxsize: 1 }));
  q.putSync(0);
  const buffer = new ArrayBuffer(8);
  // Without a timeout it waited for good (no consumer here); with one, Full.
  const error = throws(() => q.putSync({ f() {} }, { timeout: 5_000, transfer: [buffer] }), DOMException);
  assert.is(error.name, 'DataCloneError');
  assert.is(buffer.byteLength, 8, 'nothing moved');
  assert.is(q.qsize(), 1, 'the size is unchanged');
  assert.is(q.getSync({ timeout: 0 }), 0);
  q.putSync(new Uint8Array(buffer), { transfer: [buffer] });
  assert.is(buffer.byteLength, 0, 'moved at the call');
  assert.equal(q.getSync({ timeout: 10_000 }), new Uint8Array(8));
});

t('getSync({ timeout: 0 }) takes an item this handle put with a transfer, as getNowait() does', () => {
  // Such an item goes through the hub and comes back: one look without waiting for it gave Empty, while
  // get({ timeout: 0 }) and getNowait() returned it (found by a SPEC audit).
  const q = open(new Queue<ArrayBuffer>());
  const a = new Uint8Array([1, 2]).buffer;
  q.putSync(a, { transfer: [a] });
  assert.equal(new Uint8Array(q.getSync({ timeout: 0 })), new Uint8Array([1, 2]));
  const b = new Uint8Array([3]).buffer;
  q.putSync(b, { transfer: [b] });
  assert.is(q.qsize(), 1);
  assert.equal(new Uint8Array(q.getSync({ timeout: 0 })), new Uint8Array([3]));
  throws(() => q.getSync({ timeout: 0 }), Empty);
});

t('a closed queue throws ClosedError; a blocking call while an async one waits throws ERR_QUEUE_BUSY', async () => {
  const q = open(new Queue<number>());
  const pending = q.get({ timeout: 10_000 });
  assert.is(throws(() => q.getSync({ timeout: 0 }), ProcessError).code, 'ERR_QUEUE_BUSY');
  await q.put(5);
  assert.is(await pending, 5);
  q.close();
  throws(() => q.getSync(), ClosedError);
  throws(() => q.putSync(1), ClosedError);
});

t('a worker fills a bounded queue with putSync; it blocks until this thread takes; order and values kept', async () => {
  const q = open(new Queue<unknown>({ maxsize: 2 }));
  const values = [...falsy, ...Array.from({ length: 100 }, (_, i) => ({ i }))];
  const p = startTask(tasks, 'putAllSync', [q, values]);
  const got: unknown[] = [];
  for (let i = 0; i < values.length; i++) got.push(await q.get({ timeout: 30_000 }));
  assert.equal(got, values);
  await p.join();
  assert.is(p.exitCode, 0);
});

t('joinSync waits for blocking consumers in workers; times out with TimeoutError', async () => {
  const q = open(new JoinableQueue<number>());
  for (let i = 0; i < 50; i++) q.putSync(i);
  throws(() => q.joinSync({ timeout: 20 }), TimeoutError, 'nobody consumes yet');
  const consumers = [startTask(tasks, 'consumeSync', [q, 25]), startTask(tasks, 'consumeSync', [q, 25])];
  q.joinSync({ timeout: 30_000 });
  assert.is(q.qsize(), 0);
  await Promise.all(consumers.map((c) => c.join()));
  assert.equal(
    consumers.map((c) => c.exitCode),
    [0, 0],
  );
});

t("joinSync() after the handle's close() waits, as join() does (Python's put, close(), join())", async () => {
  const q = open(new JoinableQueue<number>());
  for (let i = 0; i < 10; i++) q.putSync(i);
  const consumer = startTask(tasks, 'consumeSync', [q, 10]);
  q.close();
  q.joinSync({ timeout: 30_000 });
  await consumer.join();
  assert.is(consumer.exitCode, 0);
  // Nothing unfinished: returns at once, closed or not.
  q.joinSync();
});

t('an item put just before this thread blocks reaches the worker that waits for it', async () => {
  const tasksQ = open(new Queue<number>());
  const results = open(new Queue<number>());
  const p = startTask(tasks, 'doubleSync', [tasksQ, results]);
  await tasksQ.put(21); // resolved: buffered here, handed over at the next turn of the event loop...
  assert.is(results.getSync({ timeout: 30_000 }), 42, '...or before this thread blocks');
  await p.join();
});

t("a worker's first queue works while the main thread, which has made none, blocks", async () => {
  // The hub starts with the first queue, relayed by the main thread: it must start before that thread blocks.
  // A program of its own, so that no queue of this test run has started the hub already.
  const { code, stdout, stderr } = await runTsProgram(
    (lib) => `
import { Pipe, Process, Queue, isMainThread, type Connection } from ${lib};
export async function queueOfItsOwn(conn: Connection<unknown>) {
  const q = new Queue<number>();
  await q.put(1);
  conn.send(await q.get({ timeout: 30_000 }));
}
if (isMainThread) {
  const [conn, child] = Pipe<unknown>();
  const p = new Process({ target: queueOfItsOwn, module: import.meta.url, args: [child] });
  p.start();
  console.log(conn.recvSync({ timeout: 30_000 }));
  await p.join();
}
`,
  );
  assert.is(code, 0, stderr);
  assert.is(stdout.trim(), '1');
});

t('a blocking call that only this thread could end throws ERR_DEADLOCK: a queue no other thread holds', () => {
  const lonely = open(new Queue<number>());
  assert.is(throws(() => lonely.getSync(), ProcessError).code, 'ERR_DEADLOCK');
  throws(() => lonely.getSync({ timeout: 5 }), Empty, 'with a timeout it waits');
  const full = open(new Queue<number>({ maxsize: 1 }));
  full.putSync(1);
  assert.is(throws(() => full.putSync(2), ProcessError).code, 'ERR_DEADLOCK');
});

t('joinSync() with unfinished tasks on a JoinableQueue no other thread holds throws ERR_DEADLOCK', async () => {
  // It waited for ever: only this thread could mark the task done. A program of its own, so that a regression
  // blocks that program (ended by run()'s time limit), not this test run.
  const { code, stdout, stderr } = await runTsProgram(
    (lib) => `
import { JoinableQueue } from ${lib};
const q = new JoinableQueue<number>();
q.putNowait(1);
const codeOf = (f: () => void) => { try { f(); return 'returned'; } catch (e) { return (e as { code?: string }).code ?? (e as Error).name; } };
console.log(codeOf(() => q.joinSync()));
console.log(codeOf(() => q.joinSync({ timeout: 5 })));
q.getNowait();
q.taskDone();
console.log(codeOf(() => q.joinSync()));
q.close();
`,
    30_000,
  );
  assert.is(code, 0, stderr);
  assert.equal(stdout.trim().split('\n'), ['ERR_DEADLOCK', 'TimeoutError', 'returned']);
});

t('two blocking consumers share 20,000 items: each item reaches one of them, in put order for each', async () => {
  // Each consumer's window falls behind while the other takes: the hub must slide it, or its getSync would sleep.
  const q = open(new Queue<number | null>());
  const results = open(new Queue<number[]>());
  const consumers = [startTask(tasks, 'collectSync', [q, results]), startTask(tasks, 'collectSync', [q, results])];
  const n = 20_000;
  for (let i = 0; i < n; i++) {
    await q.put(i);
    if (i % 1_000 === 999) await new Promise<void>((resolve) => setImmediate(resolve)); // bursts
  }
  await q.put(null);
  await q.put(null);
  const lists = [await results.get({ timeout: 60_000 }), await results.get({ timeout: 60_000 })];
  for (const list of lists)
    assert.ok(
      list.every((item, i) => i === 0 || item > list[i - 1]!),
      'increasing',
    );
  assert.equal(
    lists.flat().sort((a, b) => a - b),
    Array.from({ length: n }, (_, i) => i),
  );
  await Promise.all(consumers.map((c) => c.join()));
});

t(
  '20,000 blocking round trips through two queues between workers: none lost, in order',
  async () => {
    const out = open(new Queue<number>());
    const back = open(new Queue<number>());
    const n = 20_000;
    const echo = startTask(tasks, 'echoSync', [out, back, n]);
    for (let i = 0; i < n; i++) {
      out.putSync(i);
      assert.is(back.getSync({ timeout: 30_000 }), i);
    }
    await echo.join();
    assert.is(echo.exitCode, 0);
  },
  120_000,
);

t.run();
