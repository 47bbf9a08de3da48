// SimpleQueue: CPython's TestSimpleQueue (Lib/test/_test_multiprocessing.py: test_empty, test_close) ported to
// worker threads, plus the small contract: unbounded, FIFO, a working handle in another thread, ClosedError
// after close().
//
// Synchronisation is by handshake only (pipe messages); no assertion depends on how long anything takes.
import * as assert from 'uvu/assert';
import { ClosedError, Pipe, Queue, SimpleQueue } from '../lib/index.ts';
import { openQueues, rejects, suite, throws } from './_support/harness.ts';
import { start } from './_support/queue-workers.ts';

const t = suite('SimpleQueue');
const { open } = openQueues(t);

t("test_empty: empty() in the parent and in a child, around the child's puts", async () => {
  const queue = open(new SimpleQueue<boolean>());
  const [conn, childConn] = Pipe<unknown>();
  const proc = start('simpleEmpty', [queue, childConn]);

  assert.is(queue.empty(), true);
  conn.send('child_can_start');
  // The child put empty() twice: true before its first put, false after it.
  assert.equal(
    await conn.recv(),
    { done: true, isSimple: true },
    'parent_can_continue (the handle arrived as a SimpleQueue)',
  );
  assert.is(queue.empty(), false);
  assert.is(await queue.get(), true);
  assert.is(await queue.get(), false);
  assert.is(queue.empty(), true);

  await proc.join();
  assert.is(proc.exitCode, 0, String(proc.error));
});

t('test_close: closing twice is fine; put/get after close throw ClosedError', async () => {
  const queue = open(new SimpleQueue<number>());
  queue.close();
  queue.close();
  assert.match((await rejects(queue.put(1), ClosedError, 'put after close')).message, 'is closed');
  assert.match((await rejects(queue.get(), ClosedError, 'get after close')).message, 'is closed');
  throws(() => queue.empty(), ClosedError, 'empty after close, as in Python (TestSimpleQueue.test_empty_exceptions)');
});

t("unbounded and FIFO, with exactly Python's methods; an option is a TypeError, not silently ignored", async () => {
  const queue = open(new SimpleQueue<number>());
  assert.not.ok((queue as unknown) instanceof Queue, 'as in Python, a SimpleQueue is not a Queue');
  const methods = Object.getOwnPropertyNames(SimpleQueue.prototype)
    .filter((k) => k !== 'constructor')
    .sort();
  assert.equal(methods, ['close', 'empty', 'get', 'put']);
  for (let i = 0; i < 5_000; i++) await queue.put(i); // never waits, never Full
  assert.is(queue.empty(), false);
  for (let i = 0; i < 5_000; i++) assert.is(await queue.get(), i);
  assert.is(queue.empty(), true);
  assert.match(
    throws(() => new (SimpleQueue as unknown as new (o: unknown) => unknown)({ maxsize: 3 }), TypeError).message,
    'unknown option "maxsize"',
  );
});

t.run();
