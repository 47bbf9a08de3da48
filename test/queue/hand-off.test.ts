// The hand-off (lib/queue/cells.ts, "The hand-off"): a put into an empty queue goes into its mailbox, where a
// waiting get finds it with one wake-up, never seen by the hub; what cannot go that way (too big, carrying
// shared memory or handles) takes the usual way; the mailbox item is any get's, first (a busy getter holds
// nothing up, and per-producer order holds), counts in qsize() and against maxsize; a get aborted while the item
// is written lets it go to the next get. The cells are read directly, as the protocol's tests do; the hub's
// repairs of the same cells are in hub.test.ts.
import * as assert from 'uvu/assert';
import { Full, Pipe, Queue } from '../../lib/index.ts';
import { captureItem } from '../../lib/handles.ts';
import { backendOf } from '../../lib/queue.ts';
import {
  kMail,
  kMailFlags,
  kMailLength,
  kMailOffset,
  kReserved,
  MailState,
  mailWord,
  ring,
} from '../../lib/queue/cells.ts';
import type { Holder } from '../../lib/queue/holder.ts';
import { openQueues, startTask, suite } from '../_support/harness.ts';

const tasks = new URL('../fixtures/queue-tasks.ts', import.meta.url);
const t = suite('queues: the hand-off to a waiting get', 60_000);
const { open } = openQueues(t);

function cellsOf(q: Queue<unknown>): Int32Array {
  return (backendOf(q) as Holder).queueCells;
}

/** Plays a producer in another thread that began to put an item into the mailbox (cells.ts handOff()). */
function startWriting(q: Int32Array): void {
  assert.is(
    Atomics.compareExchange(q, kMail, MailState.Empty, mailWord(999, MailState.Writing)),
    MailState.Empty,
    'the mailbox was free',
  );
}

/** ... and finishes writing `value`, as handOff() does. */
function finishWriting(q: Int32Array, value: unknown): void {
  const { bytes } = captureItem(value).batch;
  new Uint8Array(q.buffer, kMailOffset, bytes.byteLength).set(new Uint8Array(bytes));
  Atomics.store(q, kMailLength, bytes.byteLength);
  Atomics.store(q, kMailFlags, 0);
  Atomics.store(q, kMail, MailState.Full);
  ring(q);
}

t('a put into an empty queue whose get waits in another thread goes straight to it, past the hub', async () => {
  const q = open(new Queue<unknown>());
  const cells = cellsOf(q);
  const [conn, child] = Pipe<unknown>();
  const p = startTask(tasks, 'getOne', [q, child]);
  assert.is(await conn.recv(), 'waiting');
  const item = { id: 7, name: 'seven', tags: ['a', 'b'], at: 1.5, none: null };
  await q.put(item);
  assert.is(Atomics.load(cells, kReserved), 0, 'never counted: it did not go through the hub');
  assert.equal(await conn.recv(), item);
  await p.join();
  assert.is(p.exitCode, 0);
  assert.is(q.qsize(), 0);
});

t('what cannot go into the mailbox goes the usual way: too big, shared memory, a handle', async () => {
  const q = open(new Queue<unknown>());
  const cells = cellsOf(q);
  const shared = new Int32Array(new SharedArrayBuffer(8));
  const inner = open(new Queue<number>());
  const items: unknown[] = ['x'.repeat(4_000), { shared }, { inner }];
  for (const item of items) {
    const got = q.get({ timeout: 10_000 });
    const counted = Atomics.load(cells, kReserved);
    await q.put(item);
    assert.is(Atomics.load(cells, kMail), MailState.Empty, 'not in the mailbox');
    assert.is(Atomics.load(cells, kReserved), counted + 1, 'counted: it goes through the hub');
    const value = (await got) as Record<string, unknown>;
    if (typeof item === 'string') assert.is(value, item);
    else if ('shared' in value) {
      (value.shared as Int32Array)[0] = 5;
      assert.is(shared[0], 5, 'the same memory');
    } else assert.instance(value.inner, Queue);
  }
  await inner.put(1);
  assert.is(await inner.get(), 1);
});

t(
  'a get whose abort finds an item in the mailbox returns it; one aborted while it is written leaves it for the next get',
  async () => {
    const q = open(new Queue<string>());
    const cells = cellsOf(q);
    const controller = new AbortController();
    const got = q.get({ signal: controller.signal });
    startWriting(cells);
    finishWriting(cells, 'written');
    controller.abort(new Error('too late')); // before this thread ran the mailbox's wake-up
    assert.is(await got, 'written', 'the abort lost the race');

    const again = new AbortController();
    const next = q.get({ signal: again.signal });
    startWriting(cells);
    again.abort(new Error('in time'));
    await next.then(
      () => assert.unreachable('resolved'),
      (error: Error) => assert.is(error.message, 'in time'),
    );
    assert.is(q.qsize(), 1, 'an item being written counts in the size');
    finishWriting(cells, 'written late');
    assert.is(await q.get({ timeout: 10_000 }), 'written late');
    assert.is(q.qsize(), 0);
    assert.is(Atomics.load(cells, kMail), MailState.Empty);
  },
);

t(
  "the mailbox item while the waiting get's thread is busy: any get's, first, in order, counted against maxsize",
  async () => {
    // The worker's get waits and then its thread stays busy: the item must not wait for that thread, nor come
    // after what the same producer put next.
    const q = open(new Queue<string>({ maxsize: 2 }));
    const cells = cellsOf(q);
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const [conn, child] = Pipe<unknown>();
    const p = startTask(tasks, 'getWhileBusy', [q, child, flag]);
    try {
      assert.is(await conn.recv(), 'offered');
      await q.put('B'); // into the mailbox, where the busy worker's get would find it
      assert.is(Atomics.load(cells, kMail), MailState.Full);
      await q.put('C'); // counted: it goes the usual way
      assert.is(q.qsize(), 2);
      assert.ok(q.full(), 'the mailbox counts against maxsize');
      assert.throws(
        () => q.putNowait('D'),
        (error: unknown) => error instanceof Full,
      );
      assert.is(await q.get({ timeout: 10_000 }), 'B', 'the mailbox item first, in put order');
      assert.is(await q.get({ timeout: 10_000 }), 'C');
    } finally {
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
    }
    await q.put('end');
    assert.is(await conn.recv(), 'end', "the worker's get, once its thread runs again");
    await p.join();
    assert.is(p.exitCode, 0);
  },
);

t.run();
