// The blocking forms of the queues: getSync, putSync, joinSync. Same values and errors as the async forms
// (falsy items, Empty/Full on timeout, ClosedError), a blocking consumer and producer in workers, a bounded
// queue that blocks its producer until a consumer takes, and blocking round trips with nothing lost.
import * as assert from 'uvu/assert';
import { ClosedError, Empty, Full, JoinableQueue, ProcessError, Queue, TimeoutError } from '../../lib/index.ts';
import { openQueues, startTask, suite, throws } from '../_support/harness.ts';

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
