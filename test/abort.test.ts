// One AbortSignal shared by many waiting calls: each call rejects with its reason, and Node prints no
// MaxListenersExceededWarning (before lib/abort.ts, each call put a listener of its own on the signal, and the
// eleventh printed a warning about a leak that is not one).
import { getEventListeners } from 'node:events';
import * as assert from 'uvu/assert';
import { JoinableQueue, Lock, Pipe, Pool, Queue } from '../lib/index.ts';
import * as tasks from './fixtures/pool-tasks.ts';
import { suite } from './_support/harness.ts';
import { onAbort } from '../lib/abort.ts';

const t = suite('AbortSignal shared by many calls');

t(
  '30 gets, puts, recvs, acquires, joins and pool tasks on one signal: all reject with its reason, no warning',
  async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on('warning', onWarning);
    const pool = new Pool({ module: new URL('./fixtures/pool-tasks.ts', import.meta.url), processes: 1 });
    const empty = new Queue<number>();
    const full = new Queue<number>({ maxsize: 1 });
    const unfinished = new JoinableQueue<number>();
    const [a, b] = Pipe<number>();
    const lock = new Lock();
    try {
      full.putNowait(0);
      unfinished.putNowait(0);
      lock.acquireSync();
      const controller = new AbortController();
      const { signal } = controller;
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < 30; i++) {
        calls.push(
          empty.get({ signal }),
          full.put(i, { signal }),
          a.recv({ signal }),
          lock.acquire({ signal }),
          unfinished.join({ signal }),
          pool.apply(tasks.never, [i], { signal }),
          pool.map(tasks.never, [i], { signal }),
        );
      }
      const reason = new Error('stop');
      controller.abort(reason);
      const outcomes = await Promise.allSettled(calls);
      assert.is(outcomes.filter((o) => o.status === 'rejected' && o.reason === reason).length, calls.length);
      await new Promise((resolve) => setImmediate(resolve)); // a warning is emitted on the next tick
      assert.equal(
        warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')),
        [],
      );
    } finally {
      process.off('warning', onWarning);
      lock.release();
      for (const q of [empty, full, unfinished]) q.close();
      a.close();
      b.close();
      await pool.terminate();
    }
  },
);

t('onAbort: once per abort, not after unlisten, and on a microtask for a signal already aborted', async () => {
  const controller = new AbortController();
  const calls: string[] = [];
  const stopA = onAbort(controller.signal, () => calls.push('a'));
  const stopB = onAbort(controller.signal, () => calls.push('b'));
  stopB();
  controller.abort();
  controller.abort();
  stopA();
  assert.equal(calls, ['a'], 'a once; b stopped listening before');
  // Armed after the abort (a Redis join()'s poll between two commands did, and waited out its timeout).
  const late: string[] = [];
  onAbort(controller.signal, () => late.push('late'));
  const cancelled = onAbort(controller.signal, () => late.push('cancelled'));
  cancelled();
  assert.equal(late, [], 'not inside the call');
  await Promise.resolve();
  assert.equal(late, ['late']);
});

t('a wait that ended leaves no listener on its signal: a per-call signal is not kept alive', async () => {
  // The one listener stayed on each signal until it aborted, and Node keeps AbortSignal.any() and
  // AbortSignal.timeout() signals that have listeners: 20,000 recv() calls kept 59 MB (found by review).
  const [a, b] = Pipe<number>();
  const q = new Queue<number>();
  const lock = new Lock();
  try {
    const signals: AbortSignal[] = [];
    for (let i = 0; i < 3; i++) {
      const signal = AbortSignal.any([new AbortController().signal]);
      signals.push(signal);
      const got = b.recv({ signal });
      const gotToo = b.recv({ signal }); // two calls on one signal: the listener goes with the last
      a.send(i);
      a.send(i);
      assert.equal([await got, await gotToo], [i, i]);
      const item = q.get({ signal });
      q.putNowait(i);
      assert.is(await item, i);
      lock.acquireSync();
      const acquired = lock.acquire({ signal });
      lock.release();
      assert.is(await acquired, true);
      lock.release();
    }
    for (const signal of signals) assert.is(getEventListeners(signal, 'abort').length, 0);
  } finally {
    a.close();
    b.close();
    q.close();
  }
});

t.run();
