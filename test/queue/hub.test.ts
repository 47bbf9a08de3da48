// The hub's repairs, driven directly: the hub's code runs in this thread (hub.ts's main() serves a port), and
// the test plays the holders, writing their shared cells and posting their messages as a holder would, and
// stopping where a terminated thread can stop. Each repair path of queue/protocol.ts has a case here: what a
// departing holder counted and never sent (uncount), a death between the two counting steps (settle, and its
// wait for holders counting or attaching), an item claimed and being fetched (requeued), a JoinableQueue's
// leases (requeued, with the unfinished count kept, or abandoned when their things moved), old batches kept
// alive by leases alone (cut out), the hand-off ring (cells.ts): its items left for any get, a dead writer's
// lock freed; a waiting holder's window slid along with others' claims, and settle() not fooled by a counting
// step that began and ended between its looks.
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import * as assert from 'uvu/assert';
import {
  claim,
  claimLeased,
  claimPinned,
  FetchState,
  kAttaching,
  kBell,
  kClaimed,
  kCounting,
  kDone,
  kFetching,
  kHolderId,
  kJoinWake,
  kLeaseTail,
  kLeasing,
  kPutCount,
  kReserved,
  kRingLock,
  kRingWatchers,
  kRoom,
  kWaiting,
  newHolderCells,
  newLeaseRing,
  newQueueCells,
  beginHandOff,
  reserve,
  size,
  taskDone,
  unfinished,
  unwatchRing,
  watchRing,
} from '../../lib/queue/cells.ts';
import { handOffValue, takeFromRing } from '../_support/hand-off.ts';
import { hubQueues, main } from '../../lib/queue/hub.ts';
import { Op, type HolderMessage, type HubMessage } from '../../lib/queue/protocol.ts';
import { decodeItem } from '../../lib/wire/decode.ts';
import { Encoder } from '../../lib/wire/encode.ts';
import type { Batch } from '../../lib/wire/format.ts';
import type { BootData } from '../../lib/protocol.ts';
import { Process } from '../../lib/index.ts';
import { eventually, suite } from '../_support/harness.ts';

const tasks = new URL('../fixtures/queue-tasks.ts', import.meta.url);

// One hub for the whole file, in this thread.
const { port1: client, port2: hubSide } = new MessageChannel();
main({ hub: hubSide } as unknown as BootData);
client.unref();

/** A holder played by the test: its cells, its lease ring, and its end of the port to the hub. */
interface FakeHolder {
  port: MessagePort;
  cells: Int32Array;
  ring: Int32Array | null;
}

/** Every port the test opened: closed after the suite, so that the hub's listeners let the process exit. */
const ports: MessagePort[] = [client];

function holderWire(joinable: boolean): {
  mine: FakeHolder;
  hubs: { port: MessagePort; cells: Int32Array; ring: Int32Array | null };
} {
  const { port1, port2 } = new MessageChannel();
  ports.push(port1);
  const cells = newHolderCells();
  const ring = joinable ? newLeaseRing() : null;
  return { mine: { port: port1, cells, ring }, hubs: { port: port2, cells, ring } };
}

function createQueue(joinable: boolean): { q: Int32Array; first: FakeHolder } {
  const q = newQueueCells();
  const { mine, hubs } = holderWire(joinable);
  client.postMessage({ op: Op.Create, cells: q, joinable, holder: hubs }, [hubs.port]);
  return { q, first: mine };
}

function attach(owner: FakeHolder, joinable: boolean): FakeHolder {
  const { mine, hubs } = holderWire(joinable);
  Atomics.add(owner.cells, kAttaching, 1);
  post(owner, { op: Op.Attach, holder: hubs }, [hubs.port]);
  return mine;
}

function post(h: FakeHolder, message: HolderMessage, transfer: unknown[] = []): void {
  h.port.postMessage(message, transfer as never[]);
}

/** Counts `items` as a put would (cells.ts: reserve) and sends them as one batch. */
function put(q: Int32Array, h: FakeHolder, items: unknown[], send = true): void {
  const encoder = new Encoder();
  for (const item of items) {
    assert.ok(reserve(q, h.cells, 0));
    encoder.put(item);
  }
  if (send) post(h, { op: Op.Put, batch: encoder.finish().batch });
}

/** Waits until the hub has handled everything posted so far (it answers a Want with `now` by bumping kReply). */
async function settled(h: FakeHolder): Promise<HubMessage[]> {
  const before = Atomics.load(h.cells, 4 /* kReply */);
  post(h, { op: Op.Want, from: Atomics.load(h.cells, 0) * 0, until: 0, width: 0, now: true });
  await eventually(() => Atomics.load(h.cells, 4) !== before, 5_000, 'the hub answering', 1);
  const messages: HubMessage[] = [];
  for (let m = receiveMessageOnPort(h.port); m !== undefined; m = receiveMessageOnPort(h.port))
    messages.push(m.message as HubMessage);
  return messages;
}

/** Asks the hub for the items from the claims on and returns them decoded, with their indexes. */
async function pushed(q: Int32Array, h: FakeHolder): Promise<{ index: number; value: unknown; deferred: boolean }[]> {
  const from = Atomics.load(q, kClaimed);
  post(h, { op: Op.Want, from, until: from + 1000, width: 1000 });
  const out: { index: number; value: unknown; deferred: boolean }[] = [];
  for (const m of await settled(h)) {
    if (m.op !== Op.Items || m.fetched === true) continue;
    for (let i = 0; i < m.n; i++)
      out.push({
        index: m.base + i,
        value: m.batch === null ? undefined : decodeItem(m.batch as Batch, i),
        deferred: m.deferred === true,
      });
  }
  return out;
}

/** A holder's port closes, as when its thread exits or is terminated: the hub sees it depart. */
async function depart(h: FakeHolder, witness: FakeHolder): Promise<void> {
  h.port.close();
  // 'close' reaches the hub after everything the holder posted; give it a few turns, then sync on the witness.
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  await settled(witness);
}

/** The hub's own state of queue `q` (its cells arrived as another Int32Array over the same memory). */
function queueOf(q: Int32Array) {
  const probe = 1_000_000_000 + Math.floor(Math.random() * 1_000_000);
  Atomics.store(q, kJoinWake, probe);
  for (const hq of hubQueues()) if (Atomics.load(hq.cells, kJoinWake) === probe) return hq;
  return undefined;
}

const t = suite('hub: repairs after a holder leaves');
t.after(() => {
  for (const port of ports) port.close();
});

/** What the hub pushed to `h` so far: the indexes of the items, in order. */
function received(h: FakeHolder): number[] {
  const out: number[] = [];
  for (let m = receiveMessageOnPort(h.port); m !== undefined; m = receiveMessageOnPort(h.port)) {
    const message = m.message as HubMessage;
    if (message.op === Op.Items) for (let i = 0; i < message.n; i++) out.push(message.base + i);
  }
  return out;
}

t("a holder whose get waits has its window slide along with others' claims (kWaiting)", async () => {
  const { q, first: consumer } = createQueue(false);
  const producer = attach(consumer, false);
  post(consumer, { op: Op.Want, from: 0, until: 2, width: 2 });
  put(q, producer, ['a', 'b']);
  await settled(producer); // the producer's own Want (width 0) syncs without touching the consumer's window
  assert.equal(received(consumer), [0, 1], 'its window');
  // Another consumer claims both: the window's end is passed, and the consumer was told of nothing.
  assert.ok(claim(q, 0, 0));
  assert.ok(claim(q, 1, 0));
  put(q, producer, ['c']);
  await settled(producer);
  assert.equal(received(consumer), [], 'past its window: not pushed while its gets do not wait');
  Atomics.store(consumer.cells, kWaiting, 1);
  put(q, producer, ['d']);
  await settled(producer);
  assert.equal(received(consumer), [2, 3], 'a waiting holder: the window slid past the claims');
});

t('what a departed producer counted and never sent is taken off the size (uncount)', async () => {
  const { q, first } = createQueue(false);
  const producer = attach(first, false);
  put(q, producer, ['sent 1', 'sent 2']);
  put(q, producer, ['never sent'], false); // counted, still in the dead thread's buffer
  await settled(producer);
  assert.is(size(q), 3);
  await depart(producer, first);
  assert.is(size(q), 2, 'the unsent item is taken off');
  assert.equal(
    (await pushed(q, first)).map((x) => x.value),
    ['sent 1', 'sent 2'],
  );
});

t(
  'a producer that died between its two counting steps: settle() puts kReserved right, once no one counts or attaches',
  async () => {
    const { q, first } = createQueue(false);
    const dying = attach(first, false);
    put(q, first, ['a']);
    await settled(first);
    // The first step of reserve() only: kReserved counted, kPutCount not; kCounting says so.
    Atomics.store(dying.cells, kCounting, 1);
    Atomics.add(q, kReserved, 1);
    // Meanwhile another holder is in the middle of counting, and one handle is in flight: settle must wait.
    Atomics.store(first.cells, kCounting, 1);
    Atomics.add(first.cells, kAttaching, 1);
    await depart(dying, first);
    assert.is(size(q), 2, 'not settled while another holder counts or attaches');
    assert.ok(queueOf(q)!.unsettled);
    Atomics.store(first.cells, kCounting, 0);
    Atomics.sub(first.cells, kAttaching, 1);
    await eventually(() => !queueOf(q)!.unsettled, 5_000, 'settle() retrying');
    assert.is(size(q), 1, 'the half-counted item is taken off');
  },
);

t(
  'settle() corrects each death once: a later death between counting steps does not take the earlier correction off again',
  async () => {
    const { q, first } = createQueue(false);
    put(q, first, ['a']);
    await settled(first);
    // A ring put's slot held (kReserved only) by a holder that dies holding it: settle() takes it off.
    const holding = attach(first, false);
    Atomics.store(holding.cells, kCounting, 1);
    Atomics.add(q, kReserved, 1);
    await depart(holding, first);
    await eventually(() => !queueOf(q)!.unsettled, 5_000, 'settle() after the departure');
    assert.is(size(q), 1, 'the held slot is taken off');
    // Then a producer dies after both steps of reserve() but before kCounting ended: nothing to correct. The
    // item it counted was never sent, which the hub takes off as lost.
    const counted = attach(first, false);
    assert.ok(reserve(q, counted.cells, 0));
    Atomics.add(counted.cells, kCounting, 1);
    await depart(counted, first);
    await eventually(() => !queueOf(q)!.unsettled, 5_000, 'settle() after the departure');
    assert.is(size(q), 1, 'the first correction is not made again');
    // And a third, that dies between the two steps: one more taken off, and only that one.
    const half = attach(first, false);
    Atomics.store(half.cells, kCounting, 1);
    Atomics.add(q, kReserved, 1);
    await depart(half, first);
    await eventually(() => !queueOf(q)!.unsettled, 5_000, 'settle() after the departure');
    assert.is(size(q), 1, 'the half-counted item is taken off, once');
    assert.equal(
      (await pushed(q, first)).map((x) => x.value),
      ['a'],
    );
  },
);

t('a departing holder wakes every waiter of its queue: puts waiting for room, gets on the ring, join()', async () => {
  // It may have died between a step and the wake-up after it: a take that freed the last slot, a put it
  // published into the ring, a taskDone() that finished the last task. Nothing else would wake them.
  for (const joinable of [false, true]) {
    const { q, first } = createQueue(joinable);
    const leaving = attach(first, joinable);
    await settled(first);
    const room = Atomics.load(q, kRoom);
    const bell = Atomics.load(q, kBell);
    const joins = Atomics.load(q, kJoinWake);
    const left = performance.now();
    await depart(leaving, first);
    await eventually(() => Atomics.load(q, kRoom) !== room, 5_000, 'puts waiting for room woken');
    // Not before the departed thread is surely gone (hub.ts, kDepartureWakeMs: 200): a wake-up that reached a
    // dying thread's pending waitAsync crashed the process on Node 20. A lower bound, which load cannot break.
    assert.ok(performance.now() - left >= 150, 'the wake-up waits for the departed thread to be gone');
    assert.is.not(Atomics.load(q, kBell), bell, 'gets waiting on the ring are woken');
    if (joinable) assert.is.not(Atomics.load(q, kJoinWake), joins, 'join() is woken');
  }
});

t('no wake-up within 150 ms of any departure: settle() correcting a death waits as a departure does', async () => {
  // settle() woke every waiter as soon as its correction succeeded, which could be a few ms after another
  // holder's thread died (3.7 ms in a review's probe): the wake-up that can crash Node 20 (hub.ts,
  // kDepartureWakeMs). A dies between its two counting steps; C is inside one, so settle() retries until C
  // departs, dying there too.
  const { q, first } = createQueue(false);
  const a = attach(first, false);
  const c = attach(first, false);
  await settled(first);
  Atomics.store(a.cells, kCounting, 1);
  Atomics.add(q, kReserved, 1);
  Atomics.store(c.cells, kCounting, 1);
  let room = Atomics.load(q, kRoom);
  await depart(a, first);
  await eventually(() => Atomics.load(q, kRoom) !== room, 5_000, "the wake-up after A's departure");
  room = Atomics.load(q, kRoom);
  const bumps: number[] = [];
  const left = performance.now();
  const watch = setInterval(() => {
    const now = Atomics.load(q, kRoom);
    if (now !== room) {
      room = now;
      bumps.push(performance.now() - left);
    }
  }, 1);
  try {
    Atomics.add(q, kReserved, 1);
    await depart(c, first);
    await eventually(() => !queueOf(q)!.unsettled && bumps.length > 0, 5_000, 'the queue settled, and woken');
    // A lower bound, which load cannot break (a late look only sees a wake-up later).
    assert.ok(bumps[0]! >= 150, `the first wake-up after C left came ${bumps[0]!.toFixed(1)} ms after`);
  } finally {
    clearInterval(watch);
  }
});

t(
  'a consumer that claimed a deferred item and died while fetching it: the hub queues it again, at the end',
  async () => {
    const { q, first } = createQueue(false);
    const consumer = attach(first, false);
    const { port1: moved } = new MessageChannel(); // an item that moves a port is deferred
    const encoder = new Encoder();
    assert.ok(reserve(q, first.cells, 0));
    encoder.put({ port: moved }, { transfer: [moved] });
    const lone = encoder.takeLast([moved]);
    post(first, { op: Op.Put, batch: lone.batch, transfer: [moved] }, [moved]);
    put(q, first, ['after it']);
    const seen = await pushed(q, consumer);
    assert.equal(
      seen.map((x) => x.deferred),
      [true, false],
    );
    assert.ok(claimPinned(q, consumer.cells, 0, 0));
    assert.is(Atomics.load(consumer.cells, kFetching), FetchState.Claimed);
    await depart(consumer, first);
    assert.is(size(q), 2, 'the item counts again');
    const again = await pushed(q, first);
    assert.equal(
      again.map((x) => x.index),
      [1, 2],
      'queued again after the items behind it',
    );
    assert.ok(again[1]!.deferred);
  },
);

t(
  'JoinableQueue: a consumer that dies with leases has them queued again; the unfinished count stays; join can end',
  async () => {
    const { q, first } = createQueue(true);
    const consumer = attach(first, true);
    put(q, first, ['x', 'y', 'z']);
    await pushed(q, consumer);
    for (const i of [0, 1, 2]) assert.ok(claimLeased(consumer.cells, consumer.ring!, i, () => claim(q, i, 0)));
    assert.ok(taskDone(q, consumer.cells)); // 'x' done: its lease acknowledged
    assert.is(unfinished(q), 2);
    await depart(consumer, first);
    assert.is(unfinished(q), 2, 'the same two tasks are unfinished');
    assert.is(size(q), 2, 'y and z are in the queue again');
    const again = await pushed(q, first);
    assert.equal(
      again.map((x) => x.value),
      ['y', 'z'],
    );
    // Done by the survivor: join() would end.
    for (const x of again) assert.ok(claimLeased(first.cells, first.ring!, x.index, () => claim(q, x.index, 0)));
    assert.ok(taskDone(q, first.cells));
    assert.ok(taskDone(q, first.cells));
    assert.is(unfinished(q), 0);
  },
);

t(
  "JoinableQueue: a departed holder's leases come back only as many as tasks are unfinished, its newest; a lease of an item that moved its port is abandoned",
  async () => {
    const { q, first } = createQueue(true);
    const consumer = attach(first, true);
    put(q, first, ['a', 'b']);
    const { port1: moved } = new MessageChannel();
    const encoder = new Encoder();
    assert.ok(reserve(q, first.cells, 0));
    encoder.put({ port: moved }, { transfer: [moved] });
    post(first, { op: Op.Put, batch: encoder.takeLast([moved]).batch, transfer: [moved] }, [moved]);
    await pushed(q, consumer);
    assert.ok(claimLeased(consumer.cells, consumer.ring!, 0, () => claim(q, 0, 0)));
    assert.ok(claimLeased(consumer.cells, consumer.ring!, 1, () => claim(q, 1, 0)));
    assert.ok(claimLeased(consumer.cells, consumer.ring!, 2, () => claimPinned(q, consumer.cells, 2, 0)));
    post(consumer, { op: Op.Fetch, index: 2 });
    await settled(consumer); // the port moved to the consumer: the hub no longer has it
    // A producer marks one task done on the consumer's behalf (a taskDone() on a handle without leases).
    assert.ok(taskDone(q, first.cells));
    assert.is(unfinished(q), 2);
    await depart(consumer, first);
    // Two tasks are unfinished: the two newest leases. 'b' is queued again; the moved item cannot be, so its
    // task is abandoned (counted done). 'a' is the one the producer's taskDone() finished.
    assert.is(size(q), 1, "'b' is queued again; 'a' and the moved item are not");
    assert.is(unfinished(q), 1, "'b' again needs a taskDone(); the moved item's task is abandoned");
    assert.equal(
      (await pushed(q, first)).map((x) => x.value),
      ['b'],
    );
  },
);

t(
  'JoinableQueue: a holder that dies inside a claim it lost: its tentative lease does not crowd out its real one',
  async () => {
    // D leases 'a'; then, claiming index 1, it writes its tentative lease and sets kLeasing, E wins the claim,
    // and D is stopped before it clears kLeasing. 'a' is unfinished and must come again ('b', E's, may too).
    const { q, first } = createQueue(true);
    const d = attach(first, true);
    const e = attach(first, true);
    put(q, first, ['a', 'b']);
    await pushed(q, d);
    await pushed(q, e);
    assert.ok(claimLeased(d.cells, d.ring!, 0, () => claim(q, 0, 0)));
    const tail = Atomics.load(d.cells, kLeaseTail);
    Atomics.store(d.ring!, tail & (d.ring!.length - 1), 1);
    Atomics.store(d.cells, kLeasing, 1);
    assert.ok(claimLeased(e.cells, e.ring!, 1, () => claim(q, 1, 0)));
    await depart(d, first);
    const again = (await pushed(q, first)).map((x) => x.value);
    assert.ok(again.includes('a'), `D's unfinished item is queued again (got ${JSON.stringify(again)})`);
  },
);

t(
  'JoinableQueue: a consumer that dies holding only an item whose port moved to it: that task is counted done, so join() ends',
  async () => {
    const { q, first } = createQueue(true);
    const consumer = attach(first, true);
    const { port1: moved } = new MessageChannel();
    const encoder = new Encoder();
    assert.ok(reserve(q, first.cells, 0));
    encoder.put({ port: moved }, { transfer: [moved] });
    post(first, { op: Op.Put, batch: encoder.takeLast([moved]).batch, transfer: [moved] }, [moved]);
    await pushed(q, consumer);
    assert.ok(claimLeased(consumer.cells, consumer.ring!, 0, () => claimPinned(q, consumer.cells, 0, 0)));
    post(consumer, { op: Op.Fetch, index: 0 });
    await settled(consumer);
    assert.is(unfinished(q), 1);
    await depart(consumer, first);
    assert.is(unfinished(q), 0, 'the item cannot be delivered again: its task is abandoned');
    assert.is(size(q), 0);
  },
);

/** Numbers a fake holder among its queue's holders (cells.ts: kHolderId), as newHolderCells(q) does. */
function numbered(h: FakeHolder, id: number): FakeHolder {
  Atomics.store(h.cells, kHolderId, id);
  return h;
}

t(
  "the hand-off: a holder that departs leaves its items in the ring for any get; a dead writer's lock is freed",
  async () => {
    const { q, first } = createQueue(false);
    numbered(first, 1);
    const producer = numbered(attach(first, false), 2);
    const writer = numbered(attach(first, false), 3);
    await settled(first);
    handOffValue(q, producer.cells, 'in the ring');
    assert.is(size(q), 1, 'the ring counts');
    await depart(producer, first);
    assert.is(size(q), 1, 'left for any get');
    assert.equal(takeFromRing(q), 'in the ring');
    assert.is(size(q), 0);

    // A put stopped inside its write: the lock taken, the bytes half written, nothing published. Its put never
    // returned.
    assert.ok(beginHandOff(q, writer.cells, 100, 0) >= 0, 'the writer took the lock');
    assert.is(beginHandOff(q, first.cells, 100, 0), -1, 'while it writes, other puts go the usual way');
    assert.is(size(q), 0, 'an item not yet published is not in the queue');
    await depart(writer, first);
    assert.is(Atomics.load(q, kRingLock), 0, 'the hub freed the lock');
    handOffValue(q, first.cells, 'next');
    assert.equal(takeFromRing(q), 'next', 'the next put uses the slot the dead writer had');
    assert.is(size(q), 0);
  },
);

t(
  'settle() is not fooled by a counting step that began and ended between its looks (live hand-offs into a bounded queue)',
  async () => {
    // A ring put into a bounded queue holds a unit in kReserved (and in no kPutCount) while it writes. Nobody
    // dies here and every count is right, so any correction settle() makes is wrong.
    const { q, first } = createQueue(false);
    numbered(first, 1);
    await settled(first);
    const hq = queueOf(q)!;
    const stop = new Int32Array(new SharedArrayBuffer(8));
    const producer = new Process({ target: 'handOffLoop', module: tasks, args: [q, first.cells, stop] });
    producer.start();
    try {
      await eventually(() => Atomics.load(stop, 1) !== 0, 30_000, 'the producer starting', 1);
      let wrong = 0;
      for (let i = 0; i < 300_000; i++) {
        hq.unsettled = true;
        const before = hq.adjusted;
        hq.settle();
        clearTimeout(hq.settleTimer);
        hq.settleTimer = undefined;
        if (hq.adjusted !== before) {
          wrong++;
          Atomics.add(q, kReserved, hq.adjusted - before); // put the count back for the next look
          hq.adjusted = before;
        }
      }
      assert.is(wrong, 0, 'corrections made while nothing needed correcting');
    } finally {
      Atomics.store(stop, 0, 1);
      await producer.join();
      hq.unsettled = false;
    }
  },
);

t("a holder that departs while its gets watch the ring takes its watches off the queue's count", async () => {
  // A thread terminated while a get of it watched the ring left kRingWatchers high for good: every put into the
  // ring then notified nobody, in vain.
  const { q, first } = createQueue(false);
  const watcher = attach(first, false);
  await settled(first);
  watchRing(q, watcher.cells); // an async get's watch
  watchRing(q, watcher.cells); // and a getSync()'s, of the same holder
  watchRing(q, first.cells);
  assert.is(Atomics.load(q, kRingWatchers), 3);
  await depart(watcher, first);
  assert.is(Atomics.load(q, kRingWatchers), 1, "the departed holder's two watches are off; the other's stays");
  unwatchRing(q, watcher.cells); // a watch that ends after the hub took it off counts nothing again
  assert.is(Atomics.load(q, kRingWatchers), 1);
  unwatchRing(q, first.cells);
  assert.is(Atomics.load(q, kRingWatchers), 0);
});

t('JoinableQueue: batches kept alive only by an old lease are cut down to the leased items', async () => {
  const { q, first } = createQueue(true);
  const slow = attach(first, true);
  for (let b = 0; b < 40; b++)
    put(
      q,
      first,
      Array.from({ length: 10 }, (_, i) => b * 10 + i),
    );
  await pushed(q, slow);
  assert.ok(
    claimLeased(slow.cells, slow.ring!, 5, () => {
      Atomics.store(q, kClaimed, 5);
      return claim(q, 5, 0);
    }),
  );
  // Everything else is claimed and acknowledged by the first holder.
  Atomics.store(q, kClaimed, 400);
  Atomics.add(q, kDone, 399);
  post(first, { op: Op.Release });
  await settled(first);
  const hq = queueOf(q)!;
  assert.ok(hq.log.length <= 2, `${hq.log.length} entries kept`);
  assert.is(hq.log[0]!.batch.n, 1, 'the leased item alone');
  assert.is(hq.log[0]!.base, 5);
  await depart(slow, first);
  assert.equal(
    (await pushed(q, first)).map((x) => x.value),
    [5],
    'the leased item is delivered again',
  );
  assert.is(Atomics.load(first.cells, kPutCount), 400);
});

/** As put(), with the batch's post number (PutMessage.seq), which a holder takes from kPostSeq as it posts. */
function putNumbered(q: Int32Array, h: FakeHolder, items: unknown[], seq: number): void {
  const encoder = new Encoder();
  for (const item of items) {
    assert.ok(reserve(q, h.cells, 0));
    encoder.put(item);
  }
  post(h, { op: Op.Put, batch: encoder.finish().batch, seq });
}

t('puts waiting on several ports are numbered in the order they were posted (seq), not port by port', async () => {
  // The hub served its ports in no set order, so a put posted after another thread's could be numbered first.
  const { q, first } = createQueue(false);
  const a = attach(first, false);
  const b = attach(first, false);
  await settled(first); // both attached
  // Posted to the ports in this order, numbered the other way (as two threads racing to their posts would).
  putNumbered(q, b, ['b: second', 'b: second too'], 1);
  putNumbered(q, a, ['a: first'], 0);
  putNumbered(q, b, ['b: fourth'], 3);
  putNumbered(q, a, ['a: third'], 2);
  assert.equal(
    (await pushed(q, first)).map((x) => x.value),
    ['a: first', 'b: second', 'b: second too', 'a: third', 'b: fourth'],
  );
});

t(
  'a put whose earlier-numbered one never comes is held back for a moment only (its thread died in between)',
  async () => {
    const { q, first } = createQueue(false);
    const a = attach(first, false);
    await settled(first);
    putNumbered(q, a, ['zero'], 0);
    // Number 1 was taken by a thread that died before posting it: 2 waits for it, then goes.
    putNumbered(q, a, ['two'], 2);
    putNumbered(q, first, ['three'], 3);
    // pushed() syncs with a getNowait()'s request, which waits for the held puts.
    assert.equal(
      (await pushed(q, first)).map((x) => x.value),
      ['zero', 'two', 'three'],
    );
  },
);

t('a put that failed to post (Skip) holds nothing back: no gap is waited for', async () => {
  // Its number was taken before the platform refused it; without a word the hub held every later put back
  // for it for kGapMs (found by review).
  const { q, first } = createQueue(false);
  const a = attach(first, false);
  await settled(first);
  putNumbered(q, a, ['zero'], 0);
  post(a, { op: Op.Skip, seq: 1 });
  putNumbered(q, first, ['two'], 2);
  await settled(a);
  const hub = queueOf(q)!;
  assert.is(hub.gapTimer, undefined, 'no gap pending');
  assert.is(hub.nextSeq, 3);
  assert.equal(
    (await pushed(q, first)).map((x) => x.value),
    ['zero', 'two'],
  );
});

t.run();
