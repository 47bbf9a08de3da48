// The hand-off (lib/queue/cells.ts, "The hand-off"): a put while every counted item is claimed writes into the
// queue's ring, where any get finds it without the hub; what cannot go that way (too big, carrying shared
// memory or handles, the ring full, another put writing) takes the usual way; the ring's items are any get's,
// first (a busy getter holds nothing up, and per-producer order holds across the ring and the hub), count in
// qsize() and against maxsize; a get aborted while an item is written lets it go to the next get. The cells
// are read directly, as the protocol's tests do; the hub's repair of the same cells is in hub.test.ts.
import * as assert from 'uvu/assert';
import { Full, Pipe, Queue, registerClass } from '../../lib/index.ts';
import { backendOf } from '../../lib/queue.ts';
import {
  beginHandOff,
  endHandOff,
  handedOff,
  kNoRoom,
  kReserved,
  kRingLock,
  kRingWatchers,
  kRoom,
  kRoomWaiters,
  kRingSlots,
  newHolderCells,
  newQueueCells,
} from '../../lib/queue/cells.ts';
import type { Holder } from '../../lib/queue/holder.ts';
import { ringBytes } from '../_support/hand-off.ts';
import { deadline, eventually, openQueues, startTask, suite } from '../_support/harness.ts';

const tasks = new URL('../fixtures/queue-tasks.ts', import.meta.url);
const t = suite('queues: the hand-off ring', 60_000);
const { open } = openQueues(t);

function cellsOf(q: Queue<unknown>): Int32Array {
  return (backendOf(q) as Holder).queueCells;
}

/** Plays a put of another thread that took the ring's lock and a slot, and is writing `value` there. */
function startWriting(q: Int32Array, value: unknown): () => void {
  const bytes = ringBytes(value);
  const h = newHolderCells(q);
  const at = beginHandOff(q, h, bytes.length, 0);
  assert.ok(at >= 0, 'the ring was free');
  new Uint8Array(q.buffer).set(bytes.subarray(0, 4), at); // half written
  return () => {
    new Uint8Array(q.buffer).set(bytes, at);
    endHandOff(q, h, bytes.length, false, 0);
  };
}

/** A queue, and a thread whose get waits on it (it sends the item it gets through `conn`). */
async function getWaitingInAnotherThread() {
  const q = open(new Queue<unknown>());
  const [conn, child] = Pipe<unknown>();
  const p = startTask(tasks, 'getOne', [q, child]);
  assert.is(await conn.recv(), 'waiting');
  return { q, cells: cellsOf(q), conn, p };
}

t('a put whose get waits in another thread goes straight to it, past the hub', async () => {
  const { q, cells, conn, p } = await getWaitingInAnotherThread();
  const item = { id: 7, name: 'seven', tags: ['a', 'b'], at: 1.5, none: null, same: [] as unknown[] };
  item.same.push(item.tags, item.tags); // refers back: decoded keeping object ids
  await q.put(item);
  assert.is(Atomics.load(cells, kReserved), 0, 'never counted: it did not go through the hub');
  const got = (await conn.recv()) as typeof item;
  assert.equal(got, item);
  assert.ok(got.same[0] === got.same[1], 'one array, twice');
  await p.join();
  assert.is(p.exitCode, 0);
  assert.is(q.qsize(), 0);
});

t('what cannot go into the ring goes the usual way: too big, shared memory, a handle', async () => {
  const q = open(new Queue<unknown>());
  const cells = cellsOf(q);
  const shared = new Int32Array(new SharedArrayBuffer(8));
  const inner = open(new Queue<number>());
  const items: unknown[] = ['x'.repeat(4_000), { shared }, { inner }];
  for (const item of items) {
    const got = q.get({ timeout: 10_000 });
    const counted = Atomics.load(cells, kReserved);
    await q.put(item);
    assert.is(handedOff(cells), 0, 'not in the ring');
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

t('a put that finds another put writing into the ring goes the usual way, and stays behind nothing', async () => {
  const q = open(new Queue<string>());
  const cells = cellsOf(q);
  const finish = startWriting(cells, 'theirs');
  await q.put('mine');
  assert.is(Atomics.load(cells, kReserved), 1, 'counted: the ring was locked');
  finish();
  assert.is(Atomics.load(cells, kRingLock), 0);
  // Two producers: each one's order holds, not an order between them. The ring comes first.
  assert.is(await q.get({ timeout: 10_000 }), 'theirs');
  assert.is(await q.get({ timeout: 10_000 }), 'mine');
  assert.is(q.qsize(), 0);
});

t(
  'a get whose abort finds an item in the ring returns it; one aborted while an item is written leaves it for the next get',
  async () => {
    const q = open(new Queue<string>());
    const cells = cellsOf(q);
    const controller = new AbortController();
    const got = q.get({ signal: controller.signal });
    startWriting(cells, 'written')();
    controller.abort(new Error('too late')); // before this thread ran the ring's wake-up
    assert.is(await got, 'written', 'the abort lost the race');

    const again = new AbortController();
    const next = q.get({ signal: again.signal });
    const finish = startWriting(cells, 'written late');
    again.abort(new Error('in time'));
    await next.then(
      () => assert.unreachable('resolved'),
      (error: Error) => assert.is(error.message, 'in time'),
    );
    assert.is(q.qsize(), 0, 'an item not yet published is not in the queue');
    finish();
    assert.is(q.qsize(), 1);
    assert.is(await q.get({ timeout: 10_000 }), 'written late');
    assert.is(q.qsize(), 0);
  },
);

t(
  "the ring's items while the waiting get's thread is busy: any get's, first, in order, counted against maxsize",
  async () => {
    // The worker's get waits and then its thread stays busy: the items must not wait for that thread.
    const q = open(new Queue<string>({ maxsize: 2 }));
    const cells = cellsOf(q);
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const [conn, child] = Pipe<unknown>();
    const p = startTask(tasks, 'getWhileBusy', [q, child, flag]);
    try {
      assert.is(await conn.recv(), 'offered');
      await q.put('B'); // into the ring, where the busy worker's get would find it
      await q.put('C');
      assert.is(handedOff(cells), 2);
      assert.is(q.qsize(), 2);
      assert.ok(q.full(), 'the ring counts against maxsize');
      assert.throws(
        () => q.putNowait('D'),
        (error: unknown) => error instanceof Full,
      );
      assert.is(await q.get({ timeout: 10_000 }), 'B', 'in put order');
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

t('a full ring: the next puts go through the hub, behind the ring, until every counted item is claimed', async () => {
  const q = open(new Queue<number>());
  const cells = cellsOf(q);
  const n = kRingSlots + 5;
  for (let i = 0; i < n; i++) q.putNowait(i);
  assert.is(handedOff(cells), kRingSlots, 'the ring is full');
  assert.is(Atomics.load(cells, kReserved), 5, 'the rest counted');
  assert.is(q.qsize(), n);
  // While counted items wait, a put must not pass them through the ring (its order).
  assert.is(await q.get({ timeout: 10_000 }), 0);
  q.putNowait(n);
  assert.is(Atomics.load(cells, kReserved), 6, 'counted, behind its earlier items');
  for (let i = 1; i <= n; i++) assert.is(await q.get({ timeout: 10_000 }), i);
  q.putNowait(-1);
  assert.is(handedOff(cells), 1, 'every counted item claimed: the ring again');
  assert.is(q.getNowait(), -1);
});

t('a get that began to wait while the hub held items still hears a put into the ring once they are gone', async () => {
  // The bench's mpmc hang: a consumer waited while the hub held items, another consumer took them all (nothing
  // was pushed to the first), and the sentinel that followed went into the ring, which it did not watch.
  const q = open(new Queue<string>());
  const cells = cellsOf(q);
  Atomics.add(cells, kReserved, 1); // an item counted elsewhere, not yet claimed
  const got = q.get(); // no timeout: one that fires would take the item from the ring and hide a missed wake-up
  let done = false;
  void got.then(() => {
    done = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  assert.not.ok(done, 'its get found nothing and waits');
  Atomics.sub(cells, kReserved, 1); // gone (as if claimed by another consumer): nothing left in the hub
  startWriting(cells, 'sentinel')(); // so the next put goes into the ring
  assert.is(await deadline(got, 5_000, 'the waiting get'), 'sentinel');
});

t('a bounded queue never holds more than maxsize: a put into the ring and a counted put both take the slot', () => {
  const q = open(new Queue<string>({ maxsize: 1 }));
  const cells = cellsOf(q);
  // A put of another thread is writing into the ring (it checked the room, not yet published).
  const writer = newHolderCells(cells);
  const bytes = ringBytes('ring');
  const at = beginHandOff(cells, writer, bytes.length, 1);
  assert.ok(at >= 0);
  assert.throws(
    () => q.putNowait('counted'),
    (error: unknown) => error instanceof Full,
    'the slot is taken by the item being written',
  );
  new Uint8Array(cells.buffer).set(bytes, at);
  endHandOff(cells, writer, bytes.length, false, 1);
  assert.is(q.qsize(), 1);
  assert.throws(
    () => q.putNowait('counted'),
    (error: unknown) => error instanceof Full,
  );
  assert.is(q.getNowait(), 'ring');
  q.putNowait('next');
  assert.is(q.getNowait(), 'next');
});

t(
  'a bounded pipeline goes through the ring only: a put that finds the queue full waits for room, it does not count its item',
  async () => {
    // A count made just after a get freed the slot would send that item through the hub, and every put after it
    // too until it was claimed: 1-2% of a maxsize-10 pipeline's items went that way.
    const q = open(new Queue<number>({ maxsize: 10 }));
    const cells = cellsOf(q);
    const bytes = ringBytes(0);
    const full = newHolderCells(cells);
    for (let i = 0; i < 10; i++) {
      const at = beginHandOff(cells, full, bytes.length, 10);
      new Uint8Array(cells.buffer).set(bytes, at);
      endHandOff(cells, full, bytes.length, false, 10);
    }
    assert.is(beginHandOff(cells, full, bytes.length, 10), kNoRoom, 'a full queue: the put waits for room');
    for (let i = 0; i < 10; i++) await q.get();
    // One producer at a time (two would find each other writing, and one of them go the usual way).
    const n = 20_000;
    const p = startTask(tasks, 'putRange', [q, 0, n]);
    for (let i = 0; i < n; i++) assert.is(await q.get(), i);
    await p.join();
    assert.is(p.exitCode, 0);
    const values = Array.from({ length: n / 4 }, (_, i) => i);
    const s = startTask(tasks, 'putAllSync', [q, values]);
    for (const value of values) assert.is(await q.get(), value);
    await s.join();
    assert.is(s.exitCode, 0);
    assert.is(Atomics.load(cells, kReserved), 0, 'no item was counted: none went through the hub');
  },
);

t(
  'putNowait() never finds a bounded queue full while it has room, though puts of another thread go through the ring',
  async () => {
    // Two ways a look saw one item too many: a put into the ring counted the ring's items once, before a get took
    // one and another put counted its item; and a put that looked while another published its item into the ring
    // and had not yet given back the slot it held. 1-23 spurious Full per 20,000 putNowait() here before.
    const q = open(new Queue<number>({ maxsize: 2 }));
    const counts = new Int32Array(new SharedArrayBuffer(16));
    const n = 20_000;
    const threads = [
      startTask(tasks, 'originCounter', [q, counts]),
      startTask(tasks, 'ringPutter', [q, counts, n]),
      startTask(tasks, 'nowaitPutter', [q, counts, n]),
    ];
    for (const p of threads) await deadline(p.join(), 50_000, `${p.name} ending`);
    assert.equal(
      threads.map((p) => p.exitCode),
      [0, 0, 0],
    );
    assert.is(Atomics.load(counts, 0), n, 'every item of the ring putter arrived');
    assert.ok(Atomics.load(counts, 1) > 0, 'putNowait() put items');
    assert.is(Atomics.load(counts, 2), 0, 'putNowait() found no room');
  },
);

t('a thread terminated while its get watches the ring leaves no watch counted', async () => {
  const { cells, p } = await getWaitingInAnotherThread();
  await eventually(() => Atomics.load(cells, kRingWatchers) === 1, 10_000, 'the get watching');
  await p.terminate();
  await eventually(() => Atomics.load(cells, kRingWatchers) === 0, 10_000, 'the watch taken off');
});

t(
  'a counted put never passes maxsize though a whole put into the ring goes by between its look and its swap',
  async () => {
    // The put read kReserved, a put into the ring held a slot, published and gave the slot back (kReserved as read,
    // one more item in the ring), and the swap succeeded: maxsize + 1. 18-24 times in 1,000,000 reserves before.
    const q = newQueueCells();
    const stop = new Int32Array(new SharedArrayBuffer(20));
    const threads = [
      startTask(tasks, 'ringPutTake', [q, newHolderCells(q), stop]),
      startTask(tasks, 'reserveAgainstRing', [q, newHolderCells(q), stop, 1_000_000]),
    ];
    for (const p of threads) await deadline(p.join(), 50_000, `${p.name} ending`);
    assert.equal(
      threads.map((p) => p.exitCode),
      [0, 0],
    );
    assert.ok(Atomics.load(stop, 3) > 0 && Atomics.load(stop, 4) > 0, 'both kinds of put succeeded');
    assert.is(Atomics.load(stop, 2), 0, 'the queue never held more than maxsize');
  },
);

t("a put into a bounded queue's ring wakes the puts waiting for room once it gives its slot back", () => {
  // Between publishing its item and giving back the slot it held, a put counts the item twice: a put of another
  // thread that looked then saw the queue one fuller than it is and may sleep on kRoom, which nothing else
  // would bump while the consumer waits for that very put. (The moment is two atomic steps of another thread,
  // so the test plays the sleeper: it counts itself as a waiter and watches kRoom.)
  const q = open(new Queue<string>({ maxsize: 2 }));
  const cells = cellsOf(q);
  Atomics.add(cells, kRoomWaiters, 1);
  try {
    const before = Atomics.load(cells, kRoom);
    const writer = newHolderCells(cells);
    const bytes = ringBytes('ring');
    const at = beginHandOff(cells, writer, bytes.length, 2);
    assert.ok(at >= 0);
    new Uint8Array(cells.buffer).set(bytes, at);
    endHandOff(cells, writer, bytes.length, false, 2);
    assert.is.not(Atomics.load(cells, kRoom), before, 'the puts waiting for room were woken');
  } finally {
    Atomics.sub(cells, kRoomWaiters, 1);
  }
  assert.is(q.getNowait(), 'ring');
});

t('a registered class whose revival gets from the same queue: each get has its own item, in call order', async () => {
  class Token {
    constructor(readonly n: number) {}
  }
  const q = open(new Queue<Token>());
  let inner: Promise<Token> | undefined;
  registerClass(Token, {
    name: 'hand-off.test Token',
    serialize: (token) => token.n,
    deserialize: (n) => {
      if (n === 1) inner = q.get({ timeout: 10_000 });
      return new Token(n as number);
    },
  });
  const outer = q.get({ timeout: 10_000 });
  await new Promise((resolve) => setImmediate(resolve)); // it waits on the ring
  await q.put(new Token(1));
  await q.put(new Token(2));
  assert.is((await outer).n, 1, 'the get called first');
  assert.ok(inner !== undefined, 'the revival ran');
  assert.is((await inner).n, 2, 'the get called inside the revival of item 1');
});

t(
  'a timeout that takes a registered class from the ring, whose revival gets from the same queue: each get its own',
  async () => {
    class Ticket {
      constructor(readonly n: number) {}
    }
    const q = open(new Queue<Ticket>());
    let inner: Promise<Ticket> | undefined;
    registerClass(Ticket, {
      name: 'hand-off.test Ticket',
      serialize: (ticket) => ticket.n,
      deserialize: (n) => {
        if (n === 1) inner = q.get(); // no timeout: a lost item would leave it waiting (the deadline below)
        return new Ticket(n as number);
      },
    });
    const outer = q.get({ timeout: 5 });
    await new Promise((resolve) => setImmediate(resolve)); // it waits on the ring
    q.putNowait(new Ticket(1));
    q.putNowait(new Ticket(2));
    // Busy past the timeout: its timer runs before the ring's wake-up, and takes item 1 itself (waiter.decided).
    for (const end = performance.now() + 20; performance.now() < end; );
    assert.is((await outer).n, 1, 'the get called first');
    assert.ok(inner !== undefined, 'the revival ran');
    assert.is((await deadline(inner, 5_000, 'the get made inside the revival')).n, 2);
  },
);

t.run();
