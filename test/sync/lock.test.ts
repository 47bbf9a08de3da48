// Lock, RLock, Semaphore, BoundedSemaphore: CPython's _TestLock and _TestSemaphore ported, then what the
// contract adds: exact counts under contention between workers, a holder that dies, the blocking forms'
// errors, and primitives carried through pipes and queues.
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import {
  Barrier,
  BoundedSemaphore,
  BrokenBarrierError,
  Condition,
  Event,
  Lock,
  Pipe,
  Pool,
  type Process,
  ProcessError,
  Queue,
  RawValue,
  RLock,
  Semaphore,
} from '../../lib/index.ts';
import { incrementSync } from '../fixtures/sync-tasks.ts';
import { openQueues, rejects, startTask, suite, throws } from '../_support/harness.ts';
import { run } from '../_support/run-program.ts';

const tasks = new URL('../fixtures/sync-tasks.ts', import.meta.url);
const root = fileURLToPath(new URL('../..', import.meta.url));

const cpython = suite('sync: CPython _TestLock, _TestSemaphore');

cpython('test_lock: acquire, a second acquire fails at once, release, a second release throws', () => {
  const lock = new Lock();
  assert.is(lock.acquireSync(), true);
  assert.is(lock.acquireSync({ timeout: 0 }), false);
  assert.is(lock.locked(), true);
  assert.is(lock.release(), undefined);
  assert.is(lock.locked(), false);
  const error = throws(() => lock.release(), ProcessError, 'release of a free lock');
  assert.is(error.code, 'ERR_LOCK_NOT_HELD');
});

cpython('test_rlock: acquired three times, released three times, then a release throws', async () => {
  const lock = new RLock();
  assert.is(lock.acquireSync(), true);
  assert.is(await lock.acquire(), true);
  assert.is(lock.acquireSync(), true);
  lock.release();
  lock.release();
  assert.is(lock.locked(), true, 'still held once');
  lock.release();
  assert.is(lock.locked(), false);
  throws(() => lock.release(), ProcessError);
});

cpython('test_lock_context: using releases at the end of the block', () => {
  const lock = new Lock();
  {
    lock.acquireSync();
    using _held = lock;
    assert.is(lock.locked(), true);
  }
  assert.is(lock.locked(), false);
});

cpython('test_semaphore, test_bounded_semaphore: counts, a failed try, releases past the start', async () => {
  for (const sem of [new Semaphore(2), new BoundedSemaphore(2)]) {
    assert.is(sem.getValue(), 2);
    assert.is(sem.acquireSync(), true);
    assert.is(sem.getValue(), 1);
    assert.is(await sem.acquire(), true);
    assert.is(sem.getValue(), 0);
    assert.is(sem.acquireSync({ timeout: 0 }), false);
    assert.is(await sem.acquire({ timeout: 0 }), false);
    sem.release();
    assert.is(sem.getValue(), 1);
    sem.release();
    assert.is(sem.getValue(), 2);
    if (sem instanceof BoundedSemaphore) {
      const error = throws(() => sem.release(), ProcessError, 'a bounded semaphore released past its start');
      assert.is(error.code, 'ERR_RELEASED_TOO_MANY');
      assert.is(sem.getValue(), 2);
    } else {
      sem.release();
      sem.release();
      assert.is(sem.getValue(), 4);
    }
  }
});

cpython('test_timeout: a semaphore of 0 refuses at once with timeout 0, and after the timeout otherwise', async () => {
  const sem = new Semaphore(0);
  assert.is(sem.acquireSync({ timeout: 0 }), false);
  let start = performance.now();
  assert.is(sem.acquireSync({ timeout: 50 }), false);
  assert.ok(performance.now() - start >= 49, 'waited the timeout');
  start = performance.now();
  assert.is(await sem.acquire({ timeout: 50 }), false);
  assert.ok(performance.now() - start >= 49, 'waited the timeout');
});

const contract = suite('sync: locks and semaphores across threads');
const { open } = openQueues(contract);

contract(
  '2 workers x 100,000 increments of a RawValue under a Lock: the total is exact',
  async () => {
    const value = RawValue('i', 0);
    const lock = new Lock();
    const a = startTask(tasks, 'incrementSync', [value, lock, 100_000]);
    const b = startTask(tasks, 'incrementAsync', [value, lock, 100_000]);
    await Promise.all([a.join(), b.join()]);
    assert.is(a.exitCode, 0);
    assert.is(b.exitCode, 0);
    assert.is(value.value, 200_000);
  },
  120_000,
);

for (const how of ['spin', 'exit', 'return'] as const) {
  contract(
    `a holder that ${how === 'spin' ? 'is terminated' : how === 'exit' ? 'calls process.exit()' : 'returns'} with the lock: the next acquire gets it`,
    async () => {
      for (const lock of [new Lock(), new RLock()]) {
        const [conn, child] = Pipe<string>();
        const p = startTask(tasks, 'holdLock', [lock, child, how]);
        assert.is(await conn.recv({ timeout: 30_000 }), 'held');
        if (how === 'spin') {
          assert.is(lock.acquireSync({ timeout: 0 }), false, 'held by the worker');
          p.terminate();
        }
        assert.is(await lock.acquire({ timeout: 30_000 }), true, 'taken over');
        lock.release();
        assert.is(lock.acquireSync({ timeout: 0 }), true, 'free again');
        lock.release();
        await p.join();
      }
    },
    60_000,
  );
}

contract(
  'a holder terminated by this thread: a blocking acquire right after gets the lock (no exit event needed)',
  async () => {
    for (const lock of [new Lock(), new RLock()]) {
      const [conn, child] = Pipe<string>();
      const p = startTask(tasks, 'holdLock', [lock, child, 'spin']);
      assert.is(await conn.recv({ timeout: 30_000 }), 'held');
      p.terminate();
      assert.is(lock.acquireSync({ timeout: 30_000 }), true, 'taken over while this thread blocks');
      lock.release();
      await p.join();
    }
  },
);

contract('a holder that dies with its parent (the parent is terminated): the next acquire gets the lock', async () => {
  // Node stopped the holder with its parent, and no thread recorded the holder's death: the lock stayed taken.
  const lock = new Lock();
  const [conn, child] = Pipe<string>();
  const p = startTask(tasks, 'parentOfHolder', [lock, child]);
  assert.is(await conn.recv({ timeout: 30_000 }), 'held');
  assert.is(lock.acquireSync({ timeout: 0 }), false, 'held by the grandchild');
  p.terminate();
  await p.join();
  assert.is(await lock.acquire({ timeout: 30_000 }), true, 'taken over');
  lock.release();
});

contract(
  'a holder that runs out of heap while this thread blocks in recvSync()/acquireSync(): EOFError, then the lock (before and after the hub started)',
  async () => {
    // Nobody recorded the death: the holder could not, and the Process's 'exit' event waits for this thread's
    // event loop. recvSync() timed out and acquireSync() returned false after 15 s each (forever without a
    // timeout). The queue hub now records it when the holder's port to it closes. In a program of its own,
    // where the hub has not started yet.
    const fixture = fileURLToPath(new URL('../fixtures/oom-lock-holder.ts', import.meta.url));
    const { code, signal, stdout, stderr } = await run(process.execPath, ['--import', 'tsx', fixture], {
      cwd: root,
      ms: 90_000,
    });
    assert.is(signal, null, stderr);
    assert.is(code, 0, stderr);
    const taken = { eof: 'EOFError', acquired: true, exitCode: 1 };
    assert.equal(JSON.parse(stdout), { beforeHub: taken, afterHub: taken }, stdout);
    assert.match(stderr, /ERR_WORKER_OUT_OF_MEMORY/, 'each holder ran out of heap');
  },
  100_000,
);

contract('acquireSync of a Lock this thread holds throws ERR_DEADLOCK instead of hanging', () => {
  const lock = new Lock();
  lock.acquireSync();
  const error = throws(() => lock.acquireSync(), ProcessError, 'a second blocking acquire');
  assert.is(error.code, 'ERR_DEADLOCK');
  assert.is(lock.acquireSync({ timeout: 10 }), false, 'with a timeout it waits and fails');
  lock.release();
});

contract(
  'a blocking wait for ever on a primitive no other thread holds throws ERR_DEADLOCK; shared, it waits',
  async () => {
    // They blocked the thread for good (found by review); a queue's blocking calls already said so.
    const semaphore = new Semaphore(0);
    const event = new Event();
    const condition = new Condition();
    const barrier = new Barrier(2);
    const deadlock = (what: string, call: () => unknown) =>
      assert.is(throws(call, ProcessError, what).code, 'ERR_DEADLOCK', what);
    deadlock('Semaphore(0).acquireSync()', () => semaphore.acquireSync());
    deadlock('Event.waitSync()', () => event.waitSync());
    condition.acquireSync();
    deadlock('Condition.waitSync()', () => condition.waitSync());
    deadlock('Condition.waitForSync()', () => condition.waitForSync(() => false));
    condition.release();
    deadlock('Barrier(2).waitSync()', () => barrier.waitSync());
    assert.is(barrier.nWaiting, 0, 'the barrier was not entered');
    assert.is(barrier.broken, false);
    // A broken one throws what wait() rejects with, shared or not.
    barrier.abort();
    throws(() => barrier.waitSync(), BrokenBarrierError, 'waitSync() of a broken barrier');
    assert.is(semaphore.acquireSync({ timeout: 10 }), false, 'with a timeout it waits and fails');
    assert.is(event.waitSync(10), false);
    // Once another thread holds them, the same calls wait for it.
    const p = startTask(tasks, 'releaseAndSet', [semaphore, event]);
    assert.is(semaphore.acquireSync(), true);
    assert.is(event.waitSync(), true);
    await p.join();
    assert.is(p.exitCode, 0);
  },
);

contract('acquire takes a signal; bad options are typed errors at the call', async () => {
  const lock = new Lock();
  lock.acquireSync();
  const controller = new AbortController();
  const waiting = lock.acquire({ signal: controller.signal });
  controller.abort(new RangeError('stop'));
  await rejects(waiting, RangeError, 'an aborted acquire');
  await rejects(lock.acquire({ timeout: -1 }), RangeError);
  lock.release();
  const gone = AbortSignal.abort(new RangeError('already'));
  await rejects(lock.acquire({ signal: gone }), RangeError, 'an aborted signal, the lock free');
  await rejects(new Semaphore(1).acquire({ signal: gone }), RangeError, 'an aborted signal, a permit free');
  lock.acquireSync();
  await rejects(lock.acquire({ timeout: '1' as unknown as number }), TypeError);
  await rejects(lock.acquire({ nope: 1 } as never), TypeError);
  throws(() => lock.acquireSync({ signal: controller.signal } as never), TypeError, 'acquireSync takes no signal');
  throws(() => new Semaphore(-1), RangeError);
  throws(() => new Semaphore(1.5), RangeError);
  lock.release();
  assert.is(await lock.acquire(), true, 'the lock still works');
  lock.release();
});

contract(
  'a Lock and a RawValue in Pool args: 4 tasks x 10,000 locked increments on 2 workers',
  async () => {
    const value = RawValue('i', 0);
    const lock = new Lock();
    const pool = new Pool({ module: tasks, processes: 2 });
    try {
      await pool.starmap(
        incrementSync,
        Array.from({ length: 4 }, () => [value, lock, 10_000] as const),
      );
      assert.is(value.value, 40_000);
    } finally {
      pool.terminate();
      await pool.join();
    }
  },
  60_000,
);

contract(
  'async acquires in one thread take turns: in order, and one that times out or is aborted leaves its place',
  async () => {
    for (const kind of ['Lock', 'Semaphore', 'RLock'] as const) {
      const lock = kind === 'Lock' ? new Lock() : kind === 'Semaphore' ? new Semaphore(1) : new RLock();
      // A failed assertion must not leave an acquire waiting: that would keep the test program alive.
      const cleanup = new AbortController();
      const { signal } = cleanup;
      // Held, so that this thread's acquires must wait: by this thread (a Lock or Semaphore does not let its
      // holder's thread in again), or by a worker that is then terminated (an RLock would).
      let holder: Process | undefined;
      try {
        if (kind === 'RLock') {
          const [conn, child] = Pipe<string>();
          holder = startTask(tasks, 'holdLock', [lock, child, 'spin']);
          assert.is(await conn.recv({ timeout: 30_000 }), 'held');
        } else assert.is(lock.acquireSync(), true);
        const order: string[] = [];
        const controller = new AbortController();
        const first = lock.acquire({ signal }).then((ok) => order.push(`first ${ok}`));
        const timedOut = lock.acquire({ timeout: 50, signal });
        const aborted = lock.acquire({ signal: AbortSignal.any([signal, controller.signal]) }).catch((e: unknown) => e);
        const third = lock.acquire({ signal }).then((ok) => order.push(`third ${ok}`));
        first.catch(() => {});
        third.catch(() => {});
        assert.is(await timedOut, false, `${kind}: a waiter in line times out`);
        controller.abort(new Error('stop'));
        assert.is(((await aborted) as Error).message, 'stop', `${kind}: an aborted waiter in line rejects`);
        assert.equal(order, [], kind);
        if (holder === undefined) {
          lock.release();
          // Made after the release, before the oldest waiter woke: it goes behind the waiters (it took the lock).
          const late = lock.acquire({ signal }).then((ok) => order.push(`late ${ok}`));
          late.catch(() => {});
          await Promise.race([first, third, late]);
          assert.equal(order, ['first true'], `${kind}: the oldest waiter gets it first`);
          lock.release();
          await Promise.race([third, late]);
          assert.equal(order, ['first true', 'third true'], kind);
          lock.release();
          await late;
          assert.equal(order, ['first true', 'third true', 'late true'], `${kind}: a new acquire waits its turn`);
        } else {
          // Taken over from the dead worker. An RLock is held per thread, so both of this thread's waiters hold
          // it once the first has it (README), and their order is not told apart.
          holder.terminate();
          await Promise.all([first, third]);
          assert.equal(order.sort(), ['first true', 'third true'], kind);
          lock.release();
        }
        lock.release();
      } finally {
        cleanup.abort();
        holder?.terminate();
        await holder?.join();
      }
    }
  },
);

contract(
  'many async acquires of one lock in one thread each wait on its cell a few times, not once per release',
  async () => {
    const lock = new Lock();
    const cleanup = new AbortController();
    const waitAsync = Atomics.waitAsync;
    let waits = 0;
    Atomics.waitAsync = ((...args: Parameters<typeof waitAsync>) => {
      waits++;
      return waitAsync(...args);
    }) as typeof waitAsync;
    try {
      const n = 300;
      let holding = 0;
      await Promise.all(
        Array.from({ length: n }, async () => {
          await lock.acquire({ signal: cleanup.signal });
          assert.is(++holding, 1, 'one holder at a time');
          await new Promise((resolve) => setImmediate(resolve));
          holding--;
          lock.release();
        }),
      );
      // Woken all together, they waited about n * n / 2 times (45,150 here; 6.1 s for n = 1,000).
      assert.ok(waits <= 3 * n, `${waits} waits for ${n} acquires`);
    } finally {
      Atomics.waitAsync = waitAsync;
      cleanup.abort();
    }
  },
);

contract('locks and semaphores sent through a pipe and a queue are the same lock', async () => {
  const lock = new Lock();
  const sem = new Semaphore(0);
  const [a, b] = Pipe<[Lock, Semaphore]>();
  a.send([lock, sem]);
  const [lock2, sem2] = await b.recv({ timeout: 10_000 });
  assert.ok(lock2 instanceof Lock);
  lock2.acquireSync();
  assert.is(lock.locked(), true, 'the copy holds the original');
  lock.release();
  const q = open(new Queue<Semaphore>());
  await q.put(sem);
  const sem3 = await q.get({ timeout: 10_000 });
  assert.ok(sem3 instanceof Semaphore);
  sem3.release();
  assert.is(sem2.getValue(), 1);
  assert.is(sem.acquireSync({ timeout: 0 }), true);
  a.close();
  b.close();
});

cpython.run();
contract.run();
