// The hand-off (lib/queue/cells.ts, "The hand-off"): a put into an empty queue whose get waits goes straight to
// that get, never seen by the hub; what cannot go that way (too big, carrying shared memory or handles) takes
// the usual way; an item in the mailbox is any get's, first (a busy or departed getter holds nothing up, and
// per-producer order holds), counts in qsize() and against maxsize; a get aborted as the item is written lets
// it go to the next get. The cells are read directly, as the protocol's tests do; the hub's repairs of the same
// cells are in hub.test.ts.
import * as assert from 'uvu/assert';
import { Full, Pipe, Queue } from '../../lib/index.ts';
import { backendOf } from '../../lib/queue.ts';
import {
  kHolderId,
  kMail,
  kMailFlags,
  kMailLength,
  kMailOffset,
  kMailProducer,
  kReserved,
  MailState,
  mailWord,
  ring,
} from '../../lib/queue/cells.ts';
import type { Holder } from '../../lib/queue/holder.ts';
import { captureItem } from '../../lib/handles.ts';
import { deadline, openQueues, startTask, suite } from '../_support/harness.ts';

const tasks = new URL('../fixtures/queue-tasks.ts', import.meta.url);
const t = suite('queues: the hand-off to a waiting get', 60_000);
const { open } = openQueues(t);

function cellsOf(q: Queue<unknown>): { q: Int32Array; id: number } {
  const holder = backendOf(q) as Holder;
  return { q: holder.queueCells, id: Atomics.load(holder.holderCells, kHolderId) };
}

/** Resolves once kMail holds `word` (a getter in another thread opened its offer, say). */
function mailIs(q: Int32Array, word: number, what: string): Promise<void> {
  return deadline(
    (async () => {
      while (Atomics.load(q, kMail) !== word) await new Promise((r) => setTimeout(r, 1));
    })(),
    10_000,
    what,
  );
}

/** Plays a producer in another thread that took the offer of holder `id` and is writing its item. */
function takeOffer(q: Int32Array, id: number): void {
  Atomics.store(q, kMailProducer, 999);
  assert.is(
    Atomics.compareExchange(q, kMail, mailWord(id, MailState.Open), mailWord(id, MailState.Writing)),
    mailWord(id, MailState.Open),
    'the offer was open',
  );
}

/** ... and finishes writing `value`, as cells.ts handOff() does. */
function fillOffer(q: Int32Array, id: number, value: unknown): void {
  const { bytes } = captureItem(value).batch;
  new Uint8Array(q.buffer, kMailOffset, bytes.byteLength).set(new Uint8Array(bytes));
  Atomics.store(q, kMailLength, bytes.byteLength);
  Atomics.store(q, kMailFlags, 0);
  Atomics.store(q, kMail, mailWord(id, MailState.Full));
  Atomics.store(q, kMailProducer, 0);
  ring(q);
}

t('a put into an empty queue whose get waits in another thread goes straight to it: never counted', async () => {
  const q = open(new Queue<unknown>());
  const { q: cells } = cellsOf(q);
  const [conn, child] = Pipe<unknown>();
  const p = startTask(tasks, 'getOne', [q, child]);
  assert.is(await conn.recv(), 'waiting');
  await deadline(
    (async () => {
      while ((Atomics.load(cells, kMail) & 3) !== MailState.Open) await new Promise((r) => setTimeout(r, 1));
    })(),
    10_000,
    "the worker's get offering the hand-off",
  );
  const item = { id: 7, name: 'seven', tags: ['a', 'b'], at: 1.5, none: null };
  await q.put(item);
  assert.is(Atomics.load(cells, kReserved), 0, 'not counted: it never went through the queue');
  assert.equal(await conn.recv(), item);
  await p.join();
  assert.is(p.exitCode, 0);
});

t('what cannot be handed over goes the usual way: too big, shared memory, a handle', async () => {
  const q = open(new Queue<unknown>());
  const { q: cells, id } = cellsOf(q);
  const shared = new Int32Array(new SharedArrayBuffer(8));
  const inner = open(new Queue<number>());
  const items: unknown[] = ['x'.repeat(4_000), { shared }, { inner }];
  for (const item of items) {
    const got = q.get({ timeout: 10_000 });
    assert.is(Atomics.load(cells, kMail), mailWord(id, MailState.Open), 'the get offers');
    await q.put(item);
    assert.is(Atomics.load(cells, kReserved) > 0, true, 'counted: it goes through the hub');
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
  'a get whose abort finds the item written returns it; one aborted while it is written leaves it for the next get',
  async () => {
    const q = open(new Queue<string>());
    const { q: cells, id } = cellsOf(q);
    const controller = new AbortController();
    const got = q.get({ signal: controller.signal });
    takeOffer(cells, id);
    fillOffer(cells, id, 'written');
    controller.abort(new Error('too late')); // before this thread ran the mailbox's wake-up
    assert.is(await got, 'written', 'the abort lost the race');

    const again = new AbortController();
    const next = q.get({ signal: again.signal });
    takeOffer(cells, id);
    again.abort(new Error('in time'));
    await next.then(
      () => assert.unreachable('resolved'),
      (error: Error) => assert.is(error.message, 'in time'),
    );
    fillOffer(cells, id, 'written late');
    assert.is(q.qsize(), 1, 'the mailbox counts in the size');
    assert.is(await q.get({ timeout: 10_000 }), 'written late');
    assert.is(q.qsize(), 0);
    assert.is(Atomics.load(cells, kMail), MailState.Empty);
  },
);

t("an item handed to a busy thread's get is any get's: taken first, in order, counted against maxsize", async () => {
  // The worker's get offers the hand-off and then its thread stays busy: the item handed to it must not wait
  // for that thread, nor come after what the same producer put next.
  const q = open(new Queue<string>({ maxsize: 2 }));
  const { q: cells } = cellsOf(q);
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const [conn, child] = Pipe<unknown>();
  const p = startTask(tasks, 'getWhileBusy', [q, child, flag]);
  try {
    assert.is(await conn.recv(), 'offered');
    await deadline(
      (async () => {
        while ((Atomics.load(cells, kMail) & 7) !== MailState.Open) await new Promise((r) => setTimeout(r, 1));
      })(),
      10_000,
      "the worker's offer",
    );
    await q.put('B'); // handed over to the busy worker's get
    assert.is(Atomics.load(cells, kMail) & 7, MailState.Full);
    await q.put('C'); // counted: it goes the usual way
    assert.is(q.qsize(), 2);
    assert.ok(q.full(), 'the mailbox counts against maxsize');
    assert.throws(
      () => q.putNowait('D'),
      (error: unknown) => error instanceof Full,
    );
    assert.is(await q.get({ timeout: 10_000 }), 'B', 'the item handed over first, in put order');
    assert.is(await q.get({ timeout: 10_000 }), 'C');
  } finally {
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  }
  await q.put('end');
  assert.is(await conn.recv(), 'end', "the worker's get, once its thread runs again");
  await p.join();
  assert.is(p.exitCode, 0);
});

t.run();
