// The hand-off (lib/queue/cells.ts, "The hand-off"): a put into an empty queue whose get waits goes straight to
// that get, never counted and never seen by the hub; what cannot go that way (too big, carrying shared memory
// or handles) takes the usual way; a get that stops waiting as a put takes its offer returns the item (abort) or
// leaves it to the next get of any holder (orphaned). The cells are read directly, as the protocol's tests do;
// the hub's repairs of the same cells are in hub.test.ts.
import * as assert from 'uvu/assert';
import { Pipe, Queue } from '../../lib/index.ts';
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
    Atomics.compareExchange(q, kMail, mailWord(id, MailState.Open), mailWord(id, MailState.Taken)),
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
  Atomics.notify(q, kMail);
  Atomics.store(q, kMailProducer, 0);
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

t('a get aborted after a put took its offer returns the item: the abort lost the race', async () => {
  const q = open(new Queue<string>());
  const { q: cells, id } = cellsOf(q);
  const controller = new AbortController();
  const got = q.get({ signal: controller.signal });
  takeOffer(cells, id);
  controller.abort(new Error('too late'));
  fillOffer(cells, id, 'handed over');
  assert.is(await got, 'handed over');
  assert.is(Atomics.load(cells, kMail), MailState.Empty);
  // And an abort before any put took the offer rejects, and withdraws the offer.
  const again = new AbortController();
  const next = q.get({ signal: again.signal });
  again.abort(new Error('stop'));
  await next.then(
    () => assert.unreachable('resolved'),
    (error: Error) => assert.is(error.message, 'stop'),
  );
  assert.is(Atomics.load(cells, kMail), MailState.Empty, 'withdrawn');
});

t('an item handed over as the last get was served another way is left to the next get of any holder', async () => {
  const q = open(new Queue<string>());
  const { q: cells, id } = cellsOf(q);
  const first = q.get({ timeout: 10_000 });
  takeOffer(cells, id);
  // Meanwhile an item comes the usual way (the offer is taken, so this put cannot hand over) and serves the get.
  await q.put('counted');
  assert.is(await first, 'counted');
  fillOffer(cells, id, 'handed over');
  // No get of this holder waits: the item is orphaned (Full, holder 0), and the next get takes it.
  await mailIs(cells, mailWord(0, MailState.Full), 'the orphaned item');
  assert.is(await q.get({ timeout: 10_000 }), 'handed over');
  assert.is(q.qsize(), 0);
});

t.run();
