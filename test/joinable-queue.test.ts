// JoinableQueue: CPython's test_task_done (Lib/test/_test_multiprocessing.py, _TestQueue) with four worker
// processes, then the contract: taskDone() too many times is a typed error, join() with nothing unfinished
// resolves at once, join() in one thread sees taskDone() in another, and a producer that dies with items it
// never handed over does not leave join() waiting for them.
//
// Synchronisation is by handshake only (pipe or queue messages); no assertion depends on how long anything takes.
import * as assert from 'uvu/assert';
import {
  ClosedError,
  Empty,
  JoinableQueue,
  Pipe,
  type Process,
  ProcessError,
  Queue,
  TimeoutError,
} from '../lib/index.ts';
import { deadline, openQueues, rejects, suite, throws } from './_support/harness.ts';
import { joinedOk, start } from './_support/queue-workers.ts';
import { runTsProgram } from './_support/run-program.ts';

/** True if `promise` has settled once the event loop has turned (timers, I/O and immediates run). */
async function settledSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

/** Starts a consumer that gets one item, reports it and hangs until terminated: its item stays leased. */
async function consumerHolding<T>(q: JoinableQueue<T>): Promise<{ worker: Process; item: unknown }> {
  const [conn, child] = Pipe<unknown>();
  const worker = start('getAndHang', [q, child]);
  return { worker, item: await conn.recv() };
}

const t = suite('JoinableQueue');
const { open } = openQueues(t);

t('test_task_done: four workers mark every item done and join() resolves', async () => {
  const queue = open(new JoinableQueue<number | null>());
  const done = open(new Queue<number>());
  const workers = Array.from({ length: 4 }, () => start('taskDoneWorker', [queue, done]));
  for (let i = 0; i < 10; i++) await queue.put(i);

  await queue.join();
  // Each worker puts the item on `done` before taskDone(): join() cannot resolve before all ten are there.
  assert.is(done.qsize(), 10, 'items recorded when join() resolved');
  assert.is(queue.qsize(), 0);

  for (let i = 0; i < 4; i++) await queue.put(null);
  await joinedOk(...workers);
  const seen: number[] = [];
  for (let i = 0; i < 10; i++) seen.push(await done.get());
  assert.equal(
    seen.sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
});

t('after join(), getNowait() finds every result the workers put before their taskDone()', async () => {
  // Python's pattern: workers put a result, then taskDone(); the parent joins, then drains the results without
  // waiting. Past the 16 items the hand-off ring holds, results waited in a worker's buffer for its next turn
  // (and the hub served the parent's request before the workers' batches): 16 of 20, or of 200, came.
  const queue = open(new JoinableQueue<number | null>());
  const done = open(new Queue<number>());
  const workers = Array.from({ length: 2 }, () => start('taskDoneWorker', [queue, done]));
  for (let i = 0; i < 200; i++) await queue.put(i);
  await deadline(queue.join(), 20_000, 'join()');
  const seen: number[] = [];
  for (;;) {
    try {
      seen.push(done.getNowait());
    } catch (error) {
      if (!(error instanceof Empty)) throw error;
      break;
    }
  }
  assert.is(seen.length, 200, 'every result, without waiting');
  assert.equal(
    seen.sort((a, b) => a - b),
    Array.from({ length: 200 }, (_, i) => i),
  );
  for (let i = 0; i < 2; i++) await queue.put(null);
  await joinedOk(...workers);
});

t('taskDone() too many times throws ProcessError ERR_TASK_DONE_TOO_MANY', async () => {
  const q = open(new JoinableQueue<string>());
  const fresh = throws(() => q.taskDone(), ProcessError, 'taskDone() on a fresh queue');
  assert.is(fresh.code, 'ERR_TASK_DONE_TOO_MANY');
  assert.is(fresh.message, 'taskDone() called too many times');

  await q.put('a');
  assert.is(await q.get(), 'a');
  q.taskDone();
  const again = throws(() => q.taskDone(), ProcessError, 'a second taskDone() for one item');
  assert.is(again.code, 'ERR_TASK_DONE_TOO_MANY');
  assert.is(again.message, 'taskDone() called too many times');

  // The failed calls did not drive the count below zero: one new item is one unfinished task.
  await q.put('b');
  const join = q.join();
  assert.is(await settledSoon(join), false, 'join() with one unfinished task');
  assert.is(await q.get(), 'b');
  q.taskDone();
  await deadline(join, 10_000, 'join() after the last taskDone()');
});

t('join() on a queue with nothing unfinished resolves at once', async () => {
  const q = open(new JoinableQueue<number>());
  assert.is(await settledSoon(q.join()), true, 'join() on a new queue');
  q.putNowait(1);
  assert.is(q.getNowait(), 1);
  assert.is(await settledSoon(q.join()), false, 'join() while the item is not marked done');
  q.taskDone();
  assert.is(await settledSoon(q.join()), true, 'join() once every item is done');
});

t('join() in a worker resolves when the parent marks the last item done', async () => {
  const q = open(new JoinableQueue<string>());
  await q.put('a');
  await q.put('b');
  const [conn, childConn] = Pipe<string>();
  const p = start('joinInWorker', [q, childConn]);
  assert.is(await conn.recv(), 'joining');
  assert.is(await q.get(), 'a');
  q.taskDone();
  assert.is(await conn.poll(200), false, "the worker's join() resolved with one task unfinished");
  assert.is(await q.get(), 'b');
  q.taskDone();
  assert.is(await conn.recv(), 'joined');
  await joinedOk(p);
});

t('a producer that dies with items it never handed over does not leave join() waiting for them', async () => {
  const q = open(new JoinableQueue<number>());
  const [conn, childConn] = Pipe<string>();
  // 20 items flushed, then 3 more that stay in the spinning worker's buffer until it is terminated.
  const counted = new Int32Array(new SharedArrayBuffer(4));
  const p = start('flushThenSpin', [q, childConn, 20, 3, counted]);
  assert.is(await conn.recv(), 'flushed');
  await Atomics.waitAsync(counted, 0, 0, 20_000).value; // the extra items are put (and never posted)
  p.terminate();
  await p.join();
  for (let i = 0; i < 20; i++) {
    assert.is(await q.get(), i);
    q.taskDone();
  }
  await deadline(q.join(), 10_000, 'join() after every delivered item is done');
  assert.is(q.qsize(), 0);
});

t('put/get after close() throw ClosedError; close() is idempotent', async () => {
  const q = open(new JoinableQueue<string>({ maxsize: 2 }));
  await q.put('x');
  q.close();
  q.close();
  assert.match((await rejects(q.put('y'), ClosedError)).message, 'is closed');
  assert.match((await rejects(q.get(), ClosedError)).message, 'is closed');
  throws(() => q.putNowait('y'), ClosedError);
  throws(() => q.getNowait(), ClosedError);
});

// Found by an outside check: a consumer terminated after get() and before taskDone() made join() hang for
// good, and so did an item lost with a consumer killed while fetching it. Gets are leases now: the hub
// delivers a dead consumer's unacknowledged items again (at-least-once), so join() completes.
t(
  'a consumer terminated between get() and taskDone(): its item goes to another consumer, and join() completes',
  async () => {
    for (const item of ['small', new Uint8Array(9 << 20).fill(7)]) {
      // a plain item, and one the hub sends only on fetch
      const q = open(new JoinableQueue<unknown>());
      await q.put(item);
      await q.put('second');
      const [conn, childConn] = Pipe<unknown>();
      const hung = start('getAndHang', [q, childConn]);
      const got = await conn.recv();
      hung.terminate();
      await hung.join();
      const [conn2, childConn2] = Pipe<unknown>();
      const consumer = start('consumeAndMarkDone', [q, childConn2]);
      await deadline(q.join(), 20_000, "join() after the dead consumer's item was done by another");
      await q.put(null);
      const delivered = (await conn2.recv()) as unknown[];
      await joinedOk(consumer);
      assert.equal(
        delivered.sort(),
        [got, 'second'].sort() as unknown[],
        "the dead consumer's item was delivered again",
      );
    }
  },
);

t(
  'join() takes a timeout and a signal, and close() of the handle rejects it; none of them leaves it waiting',
  async () => {
    const q = open(new JoinableQueue<number>());
    await q.put(1);
    const timedOut = await rejects(q.join({ timeout: 50 }), TimeoutError, 'join({ timeout })');
    assert.match(timedOut.message, /1 tasks? unfinished/);
    const controller = new AbortController();
    const aborted = q.join({ signal: controller.signal });
    controller.abort(new Error('stop waiting'));
    assert.is((await rejects(aborted, Error, 'join({ signal })')).message, 'stop waiting');
    // A signal already aborted rejects too, even when nothing is unfinished.
    const done = open(new JoinableQueue<number>());
    const gone = await rejects(done.join({ signal: AbortSignal.abort(new Error('gone')) }), Error, 'join({ aborted })');
    assert.is(gone.message, 'gone');
    const closing = q.join();
    q.close();
    await rejects(closing, ClosedError, 'join() when its handle closes');
    const other = open(new JoinableQueue<number>());
    assert.match((await rejects(other.join({ timeout: -1 }), RangeError, 'join({ timeout: -1 })')).message, /timeout/);
  },
);

t(
  "put, close(), join(): Python's producer order; join() after close() waits for the consumers' taskDone()",
  async () => {
    // join() after the handle's close() threw ClosedError, where Python's waits (found by a SPEC audit).
    const queue = open(new JoinableQueue<number | null>());
    const done = open(new Queue<number>());
    const workers = Array.from({ length: 2 }, () => start('taskDoneWorker', [queue, done]));
    for (let i = 0; i < 6; i++) await queue.put(i);
    for (let i = 0; i < 2; i++) await queue.put(null); // each worker's last get: not marked done
    queue.close();
    await deadline(joinedOk(...workers), 20_000, 'the workers');
    // The two nulls stay unfinished: join() after close() waits, and a timeout says so.
    await rejects(queue.join({ timeout: 100 }), TimeoutError, 'join() after close(), two tasks unfinished');
    assert.is(done.qsize(), 6);
    const lone = new JoinableQueue<number>();
    await lone.put(1);
    lone.close();
    const deadlock = await rejects(lone.join(), ProcessError, 'join() after close() that nothing could end');
    assert.is(deadlock.code, 'ERR_DEADLOCK');
  },
);

t("close() then join() resolves once the consumers' taskDone() calls are in", async () => {
  const queue = open(new JoinableQueue<number | null>());
  const done = open(new Queue<number>());
  const worker = start('taskDoneWorker', [queue, done]);
  for (let i = 0; i < 5; i++) await queue.put(i);
  queue.close();
  await deadline(queue.join(), 20_000, 'join() after close()');
  assert.is(done.qsize(), 5, "every item's task done when join() resolved");
  worker.terminate(); // it waits for more (this handle, closed, cannot send it a null)
  await deadline(worker.join(), 10_000, 'the terminated worker');
});

t(
  'taskDone() acknowledges the oldest item this handle got; on a handle that got none it marks an unfinished task done',
  async () => {
    const q = open(new JoinableQueue<string>());
    await q.put('a');
    await q.put('b');
    assert.is(await q.get(), 'a');
    assert.is(await q.get(), 'b');
    q.taskDone(); // 'a'
    q.taskDone(); // 'b'
    await deadline(q.join(), 10_000, 'join()');
    // A producer marking work done on a consumer's behalf, as Python allows.
    await q.put('c');
    const [conn, childConn] = Pipe<unknown>();
    const p = start('getAndHang', [q, childConn]);
    assert.is(await conn.recv(), 'c');
    q.taskDone();
    await deadline(q.join(), 10_000, 'join() after a taskDone() from another handle');
    p.terminate();
    await p.join();
  },
);

t(
  "a taskDone() on another handle finishes a consumer's task: when that consumer dies, its item is not delivered again",
  async () => {
    // Two consumers each get an item; this handle, which got none, marks one task done (as Python allows).
    // Before, both items were delivered again when the consumers died, and join() waited for two tasks.
    const q = open(new JoinableQueue<string>());
    await q.put('x');
    await q.put('y');
    const a = await consumerHolding(q);
    assert.is(a.item, 'x');
    const b = await consumerHolding(q);
    assert.is(b.item, 'y');
    q.taskDone();
    a.worker.terminate();
    b.worker.terminate();
    await Promise.all([a.worker.join(), b.worker.join()]);
    // One task is unfinished: one item (either) comes again, and one only.
    const again = await q.get({ timeout: 20_000 });
    assert.ok(again === 'x' || again === 'y', `got ${again}`);
    q.taskDone();
    await deadline(q.join(), 10_000, 'join() once the item delivered again is done');
    await rejects(q.get({ timeout: 2_000 }), Empty, 'a get after the one item delivered again');
  },
);

t(
  "a consumer's death delivers its item again while another consumer's tasks are marked done on other handles",
  async () => {
    // W2's task is marked done by this handle (W2 never calls taskDone()), so W2's lease stays open: it must not
    // count against W1's item, which nobody finished. (A first version of the foreign-taskDone fix lost it.)
    const q = open(new JoinableQueue<string>());
    await q.put('a');
    const w1 = await consumerHolding(q);
    assert.is(w1.item, 'a');
    await q.put('b');
    const w2 = await consumerHolding(q);
    assert.is(w2.item, 'b');
    q.taskDone(); // for 'b'
    w1.worker.terminate();
    await w1.worker.join();
    assert.is(await q.get({ timeout: 20_000 }), 'a', "the dead consumer's item comes again");
    q.taskDone();
    await deadline(q.join(), 10_000, 'join()');
    w2.worker.terminate();
    await w2.worker.join();
    await rejects(q.get({ timeout: 2_000 }), Empty, "'b', whose task is done, does not come again");
  },
);

t(
  "taskDone() after the handle's close() acknowledges what it got, as Python's task_done() does; the item does not come again",
  async () => {
    // Before, close() gave the handle's leases back at once (the item went to another get) and taskDone()
    // after it threw ClosedError.
    const q = open(new JoinableQueue<string>());
    await q.put('a');
    const [conn, child] = Pipe<unknown>();
    const consumer = start('getCloseThenTaskDone', [q, child]);
    assert.is(await conn.recv(), 'a');
    assert.is(await settledSoon(q.join()), false, 'its task is not done yet');
    conn.send('go');
    assert.is(await conn.recv(), 'marked done');
    await deadline(q.join(), 10_000, 'join() once the closed handle marked its item done');
    await joinedOk(consumer);
    await rejects(q.get({ timeout: 2_000 }), Empty, 'the item does not come again');
  },
);

t('an option a JoinableQueue does not take is a TypeError naming it', () => {
  assert.match(throws(() => new JoinableQueue({ maxSize: 3 } as never), TypeError).message, /unknown option "maxSize"/);
});

t('a join() only this thread could end fails with ERR_DEADLOCK once it runs dry; others end as before', async () => {
  // It kept the program alive for good (the lifetime review's probe: killed after 25 s), where joinSync()
  // throws ERR_DEADLOCK at the call and a lonely get() fails so.
  const ran = await runTsProgram(
    (lib) => `
    import { Event, JoinableQueue, Process, isMainThread } from ${lib};
    const code = (error: unknown) => (error as { code?: string }).code;
    export async function consume(q: JoinableQueue<number>): Promise<void> {
      await q.get();
      q.taskDone();
    }
    export async function setLater(event: Event): Promise<void> {
      await new Promise((resolve) => setTimeout(resolve, 100));
      event.set();
    }
    export async function joinAlone(): Promise<void> {
      const q = new JoinableQueue<number>();
      await q.put(1);
      console.log('worker', await q.join().catch(code));
    }
    if (isMainThread) {
      const lonely = new JoinableQueue<number>();
      await lonely.put(1);
      console.log('main', await lonely.join().catch(code));
      const timed = new JoinableQueue<number>();
      await timed.put(1);
      setTimeout(async () => {
        await timed.get();
        timed.taskDone();
      }, 20);
      console.log('timer', await timed.join());
      const shared = new JoinableQueue<number>();
      await shared.put(1);
      const joined = shared.join();
      const daemon = new Process({ target: consume, module: import.meta.url, args: [shared], daemon: true });
      daemon.start(); // shared after the join began, with a daemon that keeps nothing alive
      console.log('shared', await joined);
      // Its taskDone() waits on an Event that a worker started after it sets: the join must wait too.
      const afterEvent = new JoinableQueue<number>();
      await afterEvent.put(1);
      await afterEvent.get();
      const event = new Event();
      void event.wait().then(() => afterEvent.taskDone());
      new Process({ target: setLater, module: import.meta.url, args: [event], daemon: true }).start();
      console.log('after an event', await afterEvent.join());
      const atExit = new JoinableQueue<number>();
      await atExit.put(1);
      await atExit.get();
      process.once('beforeExit', () => atExit.taskDone());
      console.log('beforeExit', await atExit.join());
      const p = new Process({ target: joinAlone, module: import.meta.url });
      p.start();
      await p.join();
      console.log('exit', p.exitCode);
    }
  `,
  );
  assert.is(ran.code, 0, ran.stderr);
  assert.equal(ran.stdout.trim().split('\n'), [
    'main ERR_DEADLOCK',
    'timer undefined',
    'shared undefined',
    'after an event undefined',
    'beforeExit undefined',
    'worker ERR_DEADLOCK',
    'exit 0',
  ]);
});

t.run();
