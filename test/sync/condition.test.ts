// Condition and Event: CPython's _TestCondition (notify, notify_all, notify_n, timeout, waitfor,
// waitfor_timeout, wait_result) and _TestEvent ported. Where CPython sleeps to let waiters settle, these tests
// wait for a handshake (a semaphore each waiter releases), and check "no one else woke" by a wait that must
// time out: it cannot fail on a slow machine, only miss a wrong wake-up that comes later.
import * as assert from 'uvu/assert';
import { Condition, Event, Lock, Pipe, ProcessError, RawArray, Semaphore, Value } from '../../lib/index.ts';
import { startTask, suite, throws } from '../_support/harness.ts';

const tasks = new URL('../fixtures/sync-tasks.ts', import.meta.url);
const t = suite('sync: CPython _TestCondition, _TestEvent', 60_000);

/** Starts `n` conditionWaiter workers, half of them blocking, and waits until all of them sleep. */
async function sleepers(cond: Condition, sleeping: Semaphore, woken: Semaphore, n: number, timeout?: number) {
  const ps = Array.from({ length: n }, (_, i) =>
    startTask(tasks, 'conditionWaiter', [cond, sleeping, woken, timeout, i % 2 === 0]),
  );
  for (let i = 0; i < n; i++) assert.ok(await sleeping.acquire({ timeout: 30_000 }), 'a waiter started');
  return ps;
}

/** Resolves once `woken` has been released `n` times (taking them back). */
async function wokenCount(woken: Semaphore, n: number): Promise<void> {
  for (let i = 0; i < n; i++) assert.ok(await woken.acquire({ timeout: 30_000 }), `waiter ${i + 1} of ${n} woke`);
}

t('test_notify: each notify wakes one waiter', async () => {
  const cond = new Condition();
  const sleeping = new Semaphore(0);
  const woken = new Semaphore(0);
  const ps = await sleepers(cond, sleeping, woken, 2);
  assert.is(await woken.acquire({ timeout: 100 }), false, 'no one woke before a notify');
  cond.acquireSync();
  cond.notify();
  cond.release();
  await wokenCount(woken, 1);
  assert.is(await woken.acquire({ timeout: 100 }), false, 'one notify woke one waiter');
  await cond.acquire();
  cond.notify();
  cond.release();
  await wokenCount(woken, 1);
  await Promise.all(ps.map((p) => p.join()));
  assert.equal(
    ps.map((p) => p.exitCode),
    [0, 0],
  );
});

t('test_notify_all: waiters that timed out leave nothing behind; notifyAll wakes every waiter', async () => {
  const cond = new Condition();
  const sleeping = new Semaphore(0);
  const woken = new Semaphore(0);
  const timedOut = await sleepers(cond, sleeping, woken, 4, 50);
  await wokenCount(woken, 4);
  await Promise.all(timedOut.map((p) => p.join()));
  const ps = await sleepers(cond, sleeping, woken, 4);
  assert.is(await woken.acquire({ timeout: 100 }), false, 'a permit left by the timed-out waiters woke one');
  cond.acquireSync();
  cond.notifyAll();
  cond.release();
  await wokenCount(woken, 4);
  await Promise.all(ps.map((p) => p.join()));
});

t('test_notify_n: notify(2) wakes two, notify(4) the rest, a later notify(3) nothing', async () => {
  const cond = new Condition();
  const sleeping = new Semaphore(0);
  const woken = new Semaphore(0);
  const ps = await sleepers(cond, sleeping, woken, 6);
  cond.acquireSync();
  cond.notify(2);
  cond.release();
  await wokenCount(woken, 2);
  assert.is(await woken.acquire({ timeout: 100 }), false, 'notify(2) woke no third');
  cond.acquireSync();
  cond.notify(4);
  cond.release();
  await wokenCount(woken, 4);
  cond.acquireSync();
  cond.notify(3);
  cond.release();
  await Promise.all(ps.map((p) => p.join()));
  // A notify with no one waiting gives nothing that a later waiter could take.
  cond.acquireSync();
  assert.is(cond.waitSync(20), false, 'the notify(3) nobody heard was not kept');
  cond.release();
});

t('test_timeout: wait(timeout) with no notify is false, after the timeout', async () => {
  const cond = new Condition();
  await cond.acquire();
  const start = performance.now();
  assert.is(await cond.wait(50), false);
  assert.ok(performance.now() - start >= 49);
  assert.is(cond.waitSync(0), false);
  cond.release();
});

t('test_waitfor: waitFor sees the predicate through the notifies of another thread', async () => {
  const cond = new Condition();
  const state = Value('i', -1);
  const p = startTask(tasks, 'waitForFour', [cond, state]);
  await cond.acquire();
  assert.is(await cond.waitFor(() => state.value === 0, 30_000), true);
  assert.is(state.value, 0);
  cond.release();
  for (let i = 0; i < 4; i++) {
    await cond.acquire();
    state.value += 1;
    cond.notify();
    cond.release();
  }
  await p.join();
  assert.is(p.exitCode, 0);
});

t('test_waitfor_timeout: a predicate never true returns false after the timeout, not before', async () => {
  const cond = new Condition();
  const state = Value('i', 0);
  const success = RawArray('i', 1);
  const sem = new Semaphore(0);
  const p = startTask(tasks, 'waitForTimeout', [cond, state, success, sem]);
  assert.ok(await sem.acquire({ timeout: 30_000 }));
  for (let i = 0; i < 3; i++) {
    await cond.acquire();
    state.value += 1;
    cond.notify();
    cond.release();
  }
  await p.join();
  assert.is(p.exitCode, 0);
  assert.is(success[0], 1);
});

t('test_wait_result: false on timeout, true when notified from another thread', async () => {
  const c = new Condition();
  await c.acquire();
  assert.is(await c.wait(0), false);
  assert.is(await c.wait(10), false);
  const p = startTask(tasks, 'notifyOnce', [c]);
  assert.is(await c.wait(30_000), true);
  c.release();
  await p.join();
});

t('wait and notify without the lock throw ERR_LOCK_NOT_HELD; a Condition over a given Lock', async () => {
  const cond = new Condition(new Lock());
  const error = throws(() => cond.notify(), ProcessError);
  assert.is(error.code, 'ERR_LOCK_NOT_HELD');
  throws(() => cond.waitSync(0), ProcessError);
  let rejected: unknown;
  await cond.wait(0).catch((e) => (rejected = e));
  assert.ok(rejected instanceof ProcessError);
  assert.match(throws(() => new Condition('x' as never), TypeError).message, /got "x"|got 'x'|got x/);
  throws(() => new Condition({} as Lock), TypeError);
  assert.match(throws(() => cond.waitForSync(5 as never), TypeError).message, /predicate.*got 5/);
  {
    cond.acquireSync();
    using _held = cond;
    assert.is(cond.waitSync(0), false);
  }
  assert.is(cond.acquireSync({ timeout: 0 }), true, 'using released it');
  cond.release();
});

t('two async functions of one thread on one Condition (its default lock): each waits its turn', async () => {
  const cond = new Condition();
  let ready = false;
  let inside = 0;
  const waiter = async (name: string) => {
    await cond.acquire();
    inside++;
    assert.is(inside, 1, `${name}: alone in the critical section`);
    while (!ready) {
      inside--;
      await cond.wait(30_000);
      inside++;
      assert.is(inside, 1, `${name}: alone after its wait`);
    }
    inside--;
    cond.release();
    return name;
  };
  const both = Promise.all([waiter('a'), waiter('b')]);
  await new Promise((resolve) => setImmediate(resolve));
  await cond.acquire();
  ready = true;
  cond.notifyAll();
  cond.release();
  assert.equal(await both, ['a', 'b']);
});

t("a waiter notified and then terminated does not keep its place: the Condition's 256 waits stay usable", async () => {
  const cond = new Condition();
  const waiting = RawArray('i', 1);
  const p = startTask(tasks, 'manyWaiters', [cond, waiting, 256]);
  while (Atomics.load(waiting, 0) < 256) await new Promise((resolve) => setTimeout(resolve, 5));
  await cond.acquire();
  cond.notifyAll();
  p.terminate();
  await p.join();
  assert.is(await cond.wait(10), false, 'a later wait has a place (it times out, nobody notifies)');
  cond.release();
});

t('bad n for notify is a typed error', () => {
  const cond = new Condition();
  cond.acquireSync();
  throws(() => cond.notify(1.5), RangeError);
  throws(() => cond.notify(-1), RangeError);
  // The message names the value received (it named only its type).
  assert.match(throws(() => cond.notify('1' as never), TypeError).message, /n must be a number, got "1" \(string\)/);
  cond.release();
});

t('an Event set and cleared at once still releases the waits that began before', async () => {
  const event = new Event();
  const waiting = event.wait(30_000);
  event.set();
  event.clear();
  assert.is(await waiting, true);
  assert.is(event.isSet(), false);
});

t(
  'test_event: isSet, wait(0) and wait(timeout) false while clear, true at once when set; set by a worker',
  async () => {
    const event = new Event();
    assert.is(event.isSet(), false);
    assert.is(await event.wait(0), false);
    assert.is(event.waitSync(0), false);
    const start = performance.now();
    assert.is(await event.wait(50), false);
    assert.ok(performance.now() - start >= 49);
    event.set();
    assert.is(event.isSet(), true);
    assert.is(await event.wait(), true);
    assert.is(event.waitSync(50), true);
    event.clear();
    assert.is(event.isSet(), false);
    const [conn, child] = Pipe<string>();
    const p = startTask(tasks, 'setEvent', [event, child]);
    const waiting = event.wait(30_000);
    conn.send('go');
    assert.is(await waiting, true);
    // A worker blocked in waitSync is released by a set here.
    event.clear();
    const [answers, answer] = Pipe<boolean>();
    const q = startTask(tasks, 'waitEvent', [event, answer]);
    event.set();
    assert.is(await answers.recv({ timeout: 30_000 }), true);
    await Promise.all([p.join(), q.join()]);
  },
);

t.run();
