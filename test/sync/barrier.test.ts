// Barrier: CPython's _TestBarrier (barrier, barrier_10, wait_return, action, abort, reset, abort_and_reset,
// timeout, default_timeout, single_thread, thousand) ported, with N - 1 workers and this thread as the N
// parties. Counters are unlocked shared ints bumped with Atomics.add, as CPython bumps a shared list.
import * as assert from 'uvu/assert';
import { Barrier, BrokenBarrierError, Lock, Pipe, Queue, RawArray } from '../../lib/index.ts';
import * as sync from '../fixtures/sync-tasks.ts';
import { captureStderr, deadline, openQueues, rejects, startTask, suite, throws } from '../_support/harness.ts';

const tasks = new URL('../fixtures/sync-tasks.ts', import.meta.url);
const N = 5;
const half = Math.floor(N / 2);
const counter = () => RawArray('i', 1);
const counters = (n: number) => Array.from({ length: n }, counter);

const t = suite('sync: CPython _TestBarrier', 90_000);
const { open } = openQueues(t);

/** Runs `target` in N - 1 workers and `here` in this thread, then checks every worker returned. */
async function runThreads(target: keyof typeof sync, args: unknown[], here: () => Promise<unknown>) {
  const ps = Array.from({ length: N - 1 }, () => startTask(tasks, target, args));
  await here();
  await Promise.all(ps.map((p) => p.join()));
  assert.equal(
    ps.map((p) => p.exitCode),
    Array(N - 1).fill(0),
    'every worker returned',
  );
}

for (const passes of [1, 10]) {
  t(`test_barrier${passes === 10 ? '_10' : ''}: ${passes} pass(es) in lockstep, async and blocking waits`, async () => {
    const barrier = new Barrier(N, { timeout: 30_000 });
    const results = counters(2) as [Int32Array, Int32Array];
    const ps = Array.from({ length: N - 1 }, (_, i) =>
      startTask(tasks, 'multipass', [barrier, results, passes, i % 2 === 0]),
    );
    await sync.multipass(barrier, results, passes, false);
    await Promise.all(ps.map((p) => p.join()));
    assert.equal(
      ps.map((p) => p.exitCode),
      Array(N - 1).fill(0),
    );
  });
}

t('test_wait_return: the arrival indexes are 0 to N - 1, each once', async () => {
  const barrier = new Barrier(N, { timeout: 30_000 });
  const queue = open(new Queue<number>());
  await runThreads('waitReturn', [barrier, queue], () => sync.waitReturn(barrier, queue));
  const results = await Promise.all(Array.from({ length: N }, () => queue.get({ timeout: 10_000 })));
  assert.equal(
    results.sort((a, b) => a - b),
    [0, 1, 2, 3, 4],
  );
});

t('test_action: the action runs once, in the creating thread, before any party is released', async () => {
  const results = counter();
  const barrier = new Barrier(N, { action: () => Atomics.add(results, 0, 1), timeout: 30_000 });
  await runThreads('actionSeen', [barrier, results], () => sync.actionSeen(barrier, results));
  assert.is(results[0], 1);
});

t('an action that throws breaks the barrier and throws in the creating thread', async () => {
  const barrier = new Barrier(2, {
    action: () => {
      throw new RangeError('action failed');
    },
  });
  const [conn, child] = Pipe<string>();
  const p = startTask(tasks, 'waitReport', [barrier, child]);
  await rejects(barrier.wait(30_000), RangeError, 'the creator runs the action');
  assert.is(await conn.recv({ timeout: 30_000 }), 'broken', "the other party's wait");
  await p.join();
  assert.is(barrier.broken, true);
});

t('a barrier that travels and comes back to its creating thread still runs its action there', async () => {
  let ran = 0;
  const barrier = new Barrier(2, { action: () => ran++, timeout: 30_000 });
  const [conn, child] = Pipe<unknown>();
  const p = startTask(tasks, 'bounceAndWait', [child]);
  conn.send(barrier);
  const back = (await conn.recv({ timeout: 30_000 })) as Barrier;
  assert.ok(back !== barrier, 'a new object');
  const mine = await back.wait(30_000);
  const theirs = (await conn.recv({ timeout: 30_000 })) as number;
  assert.equal([mine, theirs].sort(), [0, 1]);
  assert.is(ran, 1);
  await p.join();
});

t('the creating thread need not be a party: it runs the action from its event loop', async () => {
  // Python runs the action in the last party to arrive; here it ran only in a wait of the creating thread,
  // so with two workers as the parties every round waited for ever (or until its timeout).
  const results = counter();
  const barrier = new Barrier(2, { action: () => Atomics.add(results, 0, 1), timeout: 20_000 });
  const ps = [true, false].map((blocking) => startTask(tasks, 'waitThenCount', [barrier, results, blocking]));
  await Promise.all(ps.map((p) => deadline(p.join(), 30_000, 'the parties')));
  assert.equal(
    ps.map((p) => p.exitCode),
    [0, 0],
    'both parties passed, the action run once before',
  );
  assert.is(Atomics.load(results, 0), 1);
});

t('an action run from the event loop that throws breaks the barrier, and says so on stderr', async () => {
  const barrier = new Barrier(2, {
    action: () => {
      throw new RangeError('action failed');
    },
    timeout: 20_000,
  });
  const pipes = [Pipe<string>(), Pipe<string>()];
  const { result, stderr } = await captureStderr(async () => {
    const ps = pipes.map(([, child]) => startTask(tasks, 'waitReport', [barrier, child]));
    const reports = await Promise.all(pipes.map(([conn]) => conn.recv({ timeout: 30_000 })));
    await Promise.all(ps.map((p) => p.join()));
    return reports;
  });
  assert.equal(result, ['broken', 'broken']);
  assert.match(stderr, /a Barrier's action threw; the barrier is broken/);
  assert.match(stderr, /action failed/);
});

t(
  'the creating thread exited, or dies while the action is due: the wait throws BrokenBarrierError, no hang',
  async () => {
    for (const block of [false, true]) {
      const [conn, child] = Pipe<unknown>();
      const p = startTask(tasks, 'sendBarrierWithAction', [child, block]);
      const barrier = (await conn.recv({ timeout: 30_000 })) as Barrier;
      if (block) {
        // The creator is blocked, so cannot run the action, and is then terminated.
        const waiting = barrier.wait();
        await p.terminate();
        const error = await rejects(deadline(waiting, 10_000, 'the wait'), BrokenBarrierError, 'a wait');
        assert.match(error.message, /created it, which runs its action, has exited/);
      } else {
        await p.join();
        const error = await rejects(deadline(barrier.wait(), 10_000, 'the wait'), BrokenBarrierError, 'a wait');
        assert.match(error.message, /created it, which runs its action, has exited/);
      }
    }
  },
);

t(
  'a barrier whose creating thread let it go runs its rounds without the action instead of waiting for it',
  async () => {
    const [conn, child] = Pipe<unknown>();
    const p = startTask(tasks, 'sendBarrierThenDropIt', [child]);
    const barrier = (await conn.recv({ timeout: 30_000 })) as Barrier;
    assert.is(await conn.recv({ timeout: 30_000 }), 'collected');
    assert.is(await deadline(barrier.wait(), 10_000, 'the wait'), 0);
    conn.send('done');
    await p.join();
  },
);

t("abort() and reset() right after this thread's own wait() began take effect instead of throwing", async () => {
  const barrier = new Barrier(2, { timeout: 30_000 });
  const waiting = barrier.wait();
  barrier.abort();
  await rejects(waiting, BrokenBarrierError, 'the wait the abort broke');
  assert.is(barrier.broken, true);
  barrier.reset();
  await new Promise((resolve) => setImmediate(resolve));
  assert.is(barrier.broken, false);
});

t('test_abort: an abort breaks the barrier for everyone in it and after it', async () => {
  const barrier = new Barrier(N, { timeout: 30_000 });
  const [results1, results2] = counters(2);
  await runThreads('abortOne', [barrier, results1, results2, half], () =>
    sync.abortOne(barrier, results1!, results2!, half),
  );
  assert.is(results1![0], 0);
  assert.is(results2![0], N - 1);
  assert.is(barrier.broken, true);
  await rejects(barrier.wait(), BrokenBarrierError, 'a wait after the abort');
  throws(() => barrier.waitSync(), BrokenBarrierError);
});

t('test_reset: a reset frees the waiting parties with BrokenBarrierError; the barrier works again', async () => {
  const barrier = new Barrier(N, { timeout: 30_000 });
  const results = counters(3) as [Int32Array, Int32Array, Int32Array];
  await runThreads('resetOne', [barrier, results, half], () => sync.resetOne(barrier, results, half));
  assert.equal(
    results.map((r) => r[0]),
    [0, N - 1, N],
  );
});

t('test_abort_and_reset: a broken barrier can be reset and used again', async () => {
  const barrier = new Barrier(N, { timeout: 30_000 });
  const barrier2 = new Barrier(N, { timeout: 30_000 });
  const results = counters(3) as [Int32Array, Int32Array, Int32Array];
  await runThreads('abortAndReset', [barrier, barrier2, results, half], () =>
    sync.abortAndReset(barrier, barrier2, results, half),
  );
  assert.equal(
    results.map((r) => r[0]),
    [0, N - 1, N],
  );
});

t('test_timeout: a wait that times out breaks the barrier for every party', async () => {
  const barrier = new Barrier(N, { timeout: 30_000 });
  const results = counter();
  await runThreads('timeoutOne', [barrier, results, half, 200], () => sync.timeoutOne(barrier, results, half, 200));
  assert.is(results[0], N);
});

t("test_default_timeout: the barrier's own timeout applies to a wait() given none", async () => {
  const barrier = new Barrier(N, { timeout: 200 });
  const results = counter();
  // The first wait of each party passes a long timeout explicitly (timeoutOne), the second uses the default.
  await runThreads('timeoutOne', [barrier, results, half], () => sync.timeoutOne(barrier, results, half));
  assert.is(results[0], N);
});

t('test_single_thread: a barrier of one never waits', async () => {
  const b = new Barrier(1);
  assert.is(await b.wait(), 0);
  assert.is(b.waitSync(), 0);
  assert.is(b.parties, 1);
  assert.is(b.nWaiting, 0);
  throws(() => new Barrier(0), RangeError);
  throws(() => new Barrier(257), RangeError, 'more parties than one Condition can hold waiting');
  // The messages name the value received (they named only the argument).
  assert.match(throws(() => new Barrier(2, { action: 1 as never }), TypeError).message, /action.*got 1/);
  assert.match(throws(() => new Barrier(2, 5 as never), TypeError).message, /options.*got 5/);
  assert.match(throws(() => new Barrier(2, { nope: 1 } as never), TypeError).message, /unknown option "nope"/);
  // null is not an options object, as everywhere else (it was taken for none).
  assert.match(throws(() => new Barrier(2, null as never), TypeError).message, /options.*got null/);
});

t(
  'test_thousand: 1,000 rounds in lockstep, each followed by a count under a lock',
  async () => {
    const passes = 1_000;
    const barrier = new Barrier(N - 1, { timeout: 30_000 });
    const lock = new Lock();
    const sent = counter();
    const ps = Array.from({ length: N - 1 }, () => startTask(tasks, 'thousand', [barrier, passes, sent, lock]));
    await Promise.all(ps.map((p) => p.join()));
    assert.equal(
      ps.map((p) => p.exitCode),
      Array(N - 1).fill(0),
    );
    assert.is(sent[0], passes * (N - 1));
  },
  180_000,
);

t.run();
