// Queue: CPython's _TestQueue (Lib/test/_test_multiprocessing.py) ported to worker threads, then what the
// contract adds: exactly-once delivery across many producers and consumers, FIFO per producer at every
// maxsize, flush() as a durability point, producers killed mid-put keeping no slot, delivery while the main
// thread is busy, capture at put, bounded producers, typed errors for misuse, close() waking every waiter,
// timeouts and signals of waiting puts, transfer and host objects, dead consumers not wedging the queue,
// programs exiting with queues left open, and queue handles travelling every way a handle can.
//
// Synchronisation is by handshake (a pipe or queue message, or a shared flag the test waits on). Durations
// are only checked against generous upper bounds: a 2-core busy machine is slow, never early.
import { spawn } from 'node:child_process';
import { BlockList } from 'node:net';
import { fileURLToPath } from 'node:url';
import { MessageChannel, MessagePort, receiveMessageOnPort } from 'node:worker_threads';
import * as assert from 'uvu/assert';
import {
  ClosedError,
  type Connection,
  Empty,
  EOFError,
  Event,
  Full,
  JoinableQueue,
  Pipe,
  ProcessError,
  Queue,
  Semaphore,
  SimpleQueue,
} from '../lib/index.ts';
import { captureStderr, deadline, openQueues, rejects, suite, throws } from './_support/harness.ts';
import { joinedOk, start } from './_support/queue-workers.ts';
import { run, runTsProgram } from './_support/run-program.ts';

const tasks = new URL('./fixtures/queue-tasks.ts', import.meta.url);
const root = fileURLToPath(new URL('..', import.meta.url));

/** Milliseconds `promise` takes to settle, and how it settled. */
async function timed<T>(promise: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const t0 = performance.now();
  try {
    const value = await promise;
    return { ms: performance.now() - t0, value };
  } catch (error) {
    return { ms: performance.now() - t0, error };
  }
}

/** Asserts `promise` rejects with Empty/Full (a ProcessError with its code) within a generous bound. */
async function rejectsWithin(
  promise: Promise<unknown>,
  Ctor: typeof Empty | typeof Full,
  maxMs: number,
  what: string,
): Promise<void> {
  const { ms, error } = await timed(promise);
  assert.ok(
    error instanceof Ctor,
    `${what}: expected ${Ctor.name}, got ${error === undefined ? 'a resolution' : String(error)}`,
  );
  assert.ok(error instanceof ProcessError);
  assert.is((error as ProcessError).code, Ctor === Empty ? 'Empty' : 'Full');
  assert.ok(ms < maxMs, `${what} took ${ms.toFixed(0)} ms (bound ${maxMs} ms)`);
}

/** Waits for a condition that another thread makes true, checking after every turn of the event loop. */
async function eventually(condition: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = performance.now();
  while (!condition()) {
    if (performance.now() - t0 > ms) throw new Error(`${what}: not true after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Marks a promise the test awaits later as handled, so that a failing test cannot crash the run. */
function later<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

// Every queue a test makes is closed after it (the harness's openQueues): a failing test leaves nothing waiting.
const { open, closeAll: closeQueues } = openQueues();

function isDataCloneError(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'DataCloneError';
}

// ---------------------------------------------------------------------------------------------------------
const cpython = suite('Queue: CPython _TestQueue');
cpython.after.each(closeQueues);

cpython('test_put: every blocking and timeout form, Full when full, empty/full around a consumer', async () => {
  const MAXSIZE = 6;
  const queue = open(new Queue<number>({ maxsize: MAXSIZE }));
  const [conn, childConn] = Pipe<unknown>();
  const proc = start('getAfterSignal', [queue, childConn, MAXSIZE]);

  assert.is(queue.empty(), true);
  assert.is(queue.full(), false);
  assert.is(queue.maxsize, MAXSIZE);

  await queue.put(1); // block=True (the default)
  await queue.put(2, {}); // block=True
  await queue.put(3, { timeout: Infinity }); // block=True, timeout=None
  await queue.put(4, { timeout: 0 }); // block=False
  await queue.put(5, { timeout: 0, signal: new AbortController().signal }); // block=False, timeout=None
  queue.putNowait(6);

  assert.is(queue.empty(), false);
  assert.is(queue.full(), true);
  assert.is(queue.qsize(), MAXSIZE);

  await rejectsWithin(queue.put(7, { timeout: 0 }), Full, 1_000, 'put(7, block=False)');
  const nowait = throws(() => queue.putNowait(7), Full, 'putNowait(7)');
  assert.is(nowait.code, 'Full');
  await rejectsWithin(queue.put(7, { timeout: 100 }), Full, 5_000, 'put(7, timeout=100 ms)');
  await rejectsWithin(queue.put(7, { timeout: 0 }), Full, 1_000, 'put(7, block=False) again');
  await rejectsWithin(queue.put(7, { timeout: 150 }), Full, 5_000, 'put(7, timeout=150 ms)');
  assert.is(queue.qsize(), MAXSIZE, 'failed puts add nothing');

  conn.send('child_can_start');
  assert.equal(await conn.recv(), [1, 2, 3, 4, 5, 6], 'parent_can_continue: the child got every item in order');

  assert.is(queue.empty(), true);
  assert.is(queue.full(), false);
  await joinedOk(proc);
  queue.close();
});

cpython('test_get: every blocking and timeout form, Empty when empty', async () => {
  const queue = open(new Queue<number>());
  const [conn, childConn] = Pipe<unknown>();
  const proc = start('putAfterSignal', [queue, childConn, [2, 3, 4, 5]]);

  assert.is(queue.empty(), true);
  conn.send('child_can_start');
  assert.is(await conn.recv(), 'done'); // parent_can_continue
  assert.is(queue.empty(), false);
  assert.is(queue.qsize(), 4);

  assert.is(await queue.get({ timeout: Infinity }), 2); // block=True, timeout=None
  assert.is(await queue.get(), 3); // block=True
  assert.is(await queue.get({ timeout: 1_000 }), 4); // timeout=1 s
  assert.is(queue.getNowait(), 5);
  assert.is(queue.empty(), true);

  await rejectsWithin(queue.get({ timeout: 0 }), Empty, 1_000, 'get(block=False)');
  await rejectsWithin(
    queue.get({ timeout: 0, signal: new AbortController().signal }),
    Empty,
    1_000,
    'get(block=False, timeout=None)',
  );
  const nowait = throws(() => queue.getNowait(), Empty, 'getNowait()');
  assert.is(nowait.code, 'Empty');
  await rejectsWithin(queue.get({ timeout: 100 }), Empty, 5_000, 'get(timeout=100 ms)');
  await rejectsWithin(queue.get({ timeout: 0 }), Empty, 1_000, 'get(block=False) again');
  await rejectsWithin(queue.get({ timeout: 150 }), Empty, 5_000, 'get(timeout=150 ms)');

  await joinedOk(proc);
  queue.close();
});

cpython('test_fork: items put by the parent and by a child that exits come out in order', async () => {
  const queue = open(new Queue<number>());
  for (let i = 0; i < 10; i++) await queue.put(i);
  // The child puts 10..19 and returns without flushing: its exit hands the buffered items over.
  const p = start('putRange', [queue, 10, 20]);
  for (let i = 0; i < 20; i++) assert.is(await queue.get(), i);
  await rejects(queue.get({ timeout: 0 }), Empty, 'get(block=False) after the 20 items');
  await joinedOk(p);
  queue.close();
});

cpython('test_qsize', async () => {
  const q = open(new Queue<number>());
  assert.is(q.qsize(), 0);
  await q.put(1);
  assert.is(q.qsize(), 1);
  await q.put(5);
  assert.is(q.qsize(), 2);
  await q.get();
  assert.is(q.qsize(), 1);
  await q.get();
  assert.is(q.qsize(), 0);
  q.close();
});

cpython('test_timeout: get(timeout) rejects with Empty', async () => {
  const q = open(new Queue<number>());
  await rejectsWithin(q.get({ timeout: 200 }), Empty, 5_000, 'get(timeout=200 ms)');
  q.close();
});

cpython('test_closed_queue_put_get_exceptions: ClosedError after close()', async () => {
  for (const q of [open(new Queue<string>()), open(new JoinableQueue<string>()), open(new SimpleQueue<string>())]) {
    const kind = q.constructor.name;
    q.close();
    throws(() => q.empty(), ClosedError, `${kind}: empty() after close (test_closed_queue_empty_exceptions)`);
    const put = await rejects(q.put('foo'), ClosedError, `${kind}.put after close`);
    assert.match(put.message, /is closed/);
    assert.is(put.code, 'ClosedError');
    assert.match((await rejects(q.get(), ClosedError, `${kind}.get after close`)).message, /is closed/);
    if (q instanceof Queue) {
      throws(() => q.putNowait('foo'), ClosedError, `${kind}.putNowait after close`);
      throws(() => q.getNowait(), ClosedError, `${kind}.getNowait after close`);
      await q.joinThread();
    }
    q.close(); // closing twice is fine
  }
});

cpython(
  'test_queue_feeder_donot_stop_onexc: an uncloneable item fails at put and the queue keeps working',
  async () => {
    const notSerializable = () => 'not serializable';
    const q = open(new Queue<unknown>());
    const e1 = await rejects(q.put(notSerializable), DOMException, 'put(function)');
    assert.ok(isDataCloneError(e1), `put(function) rejected with ${e1.name}`);
    assert.is(q.qsize(), 0);
    await q.put(true);
    assert.is(await q.get({ timeout: 10_000 }), true);
    q.close();

    // bpo-33078: the size is right after the failure, for a bounded queue too.
    const b = open(new Queue<unknown>({ maxsize: 1 }));
    assert.ok(isDataCloneError(await rejects(b.put({ f: notSerializable }), DOMException, 'put({ f: function })')));
    assert.ok(isDataCloneError(throws(() => b.putNowait(Symbol('no')), DOMException, 'putNowait(symbol)')));
    assert.is(b.qsize(), 0, 'the failed puts reserved no slot');
    await b.put(true);
    assert.is(b.qsize(), 1);
    // Waiting for a slot cannot hide the failure: an uncloneable item fails at the call, not when a slot frees.
    const blocked = await timed(b.put([1, notSerializable], { timeout: 60_000 }));
    assert.ok(isDataCloneError(blocked.error), `blocked put of an uncloneable value: ${String(blocked.error)}`);
    assert.ok(blocked.ms < 5_000);
    assert.is(await b.get({ timeout: 10_000 }), true);
    assert.is(b.empty(), true);
    await b.put('still works');
    assert.is(await b.get(), 'still works');
    b.close();
  },
);

cpython.run();

// ---------------------------------------------------------------------------------------------------------
const contract = suite('Queue: the contract');
contract.after.each(closeQueues);

contract('MPMC: 4 producers x 4 consumers, each item delivered exactly once', async () => {
  const P = 4,
    C = 4,
    N = 2_000;
  type Item = { p: number; i: number };
  const q = open(new Queue<Item | null>());
  const results = new Queue<{ consumer: number; got: Item[] }>();
  const counter = new Int32Array(new SharedArrayBuffer(4));
  const consumers = range(C).map((c) => start('consumeAll', [q, counter, results, c]));
  const producers = range(P).map((p) => start('produce', [q, p, N]));
  await joinedOk(...producers);

  // Every item counted by some consumer; only then the sentinels, so none can overtake an item.
  for (let seen = Atomics.load(counter, 0); seen < P * N; seen = Atomics.load(counter, 0)) {
    const w = Atomics.waitAsync(counter, 0, seen, 1_000);
    if (w.async) await w.value;
  }
  for (let c = 0; c < C; c++) await q.put(null);

  const all: Item[] = [];
  const perConsumer: number[] = [];
  for (let c = 0; c < C; c++) {
    const { got } = await results.get();
    perConsumer.push(got.length);
    all.push(...got);
  }
  await joinedOk(...consumers);

  assert.is(all.length, P * N, `items delivered in all (per consumer: ${perConsumer.join(', ')})`);
  const keys = new Set(all.map(({ p, i }) => `${p}:${i}`));
  assert.is(keys.size, P * N, 'no item delivered twice');
  for (let p = 0; p < P; p++) for (let i = 0; i < N; i++) assert.ok(keys.has(`${p}:${i}`), `item ${p}:${i} delivered`);
  assert.is(q.qsize(), 0);
  q.close();
  results.close();
});

contract(
  'an item whose moved port was closed from the other side while it waited still arrives, and the hub goes on',
  async () => {
    // Node refuses to move a closed port: the hub's post threw, the hub died, and every queue of the program
    // stopped delivering (a get with a timeout waited for good; found by review).
    const q = open(new Queue<{ reply: MessagePort } | string>());
    const p = start('putPortThenCloseIt', [q]);
    await joinedOk(p);
    const item = await q.get({ timeout: 10_000 });
    assert.ok(typeof item === 'object' && item.reply instanceof MessagePort, 'the item, with a port');
    const port = (item as { reply: MessagePort }).reply;
    await deadline(new Promise((resolve) => port.once('close', resolve)), 10_000, "the port's close");
    assert.is(await q.get({ timeout: 10_000 }), 'after');
    // A pipe end, whose port sits in its wire record: the hub's first repair missed it, and Node crashed the
    // process (a closed port posted without being moved; found by review).
    const ends = open(new Queue<Connection<string>>());
    await joinedOk(start('putEndThenCloseOther', [ends]));
    const end = await ends.get({ timeout: 10_000 });
    await rejects(end.recv({ timeout: 10_000 }), EOFError, 'the end, at EOF');
  },
);

contract(
  'a put that waits for room takes the pipe end it carries at the call; one that gives up gives it back',
  async () => {
    // The end stayed usable while the put waited: recv() took the consumer's message, and a close() made the put
    // fail later (found by review).
    const q = open(new Queue<unknown>({ maxsize: 1 }));
    await q.put('filler');
    const [a, b] = Pipe<string>();
    const timedOut = q.put(b, { timeout: 10 });
    timedOut.catch(() => {}); // awaited below; handled if an assertion fails first
    assert.is(b.closed, true, 'on its way while the put waits');
    throws(() => b.send('x'), ClosedError, 'send() on the end on its way');
    await rejects(timedOut, Full, 'the put that gave up');
    assert.is(b.closed, false, 'given back');
    const waiting = q.put(b);
    waiting.catch(() => {});
    assert.is(b.closed, true);
    b.close(); // a no-op while it is on its way: the put still delivers it
    assert.is(await q.get({ timeout: 10_000 }), 'filler');
    await waiting;
    const end = (await q.get({ timeout: 10_000 })) as Connection<string>;
    end.send('through');
    assert.is(await a.recv({ timeout: 10_000 }), 'through');
    a.close();
    end.close();
  },
);

contract('a put made after join() of the producers comes after all their items, as in Python', async () => {
  // An exiting thread waits until the hub has numbered what it sent: the hub reads its holders' ports in no
  // set order, and busy (getNowait asks it synchronously), it took a sentinel put after the join before the
  // producers' last items in 3 of 6 runs of this shape.
  const P = 2,
    C = 2,
    N = 20_000;
  for (let round = 0; round < 2; round++) {
    const q = open(new Queue<{ p: number; i: number } | null>());
    const results = open(new Queue<number>());
    const consumers = range(C).map(() => start('consumeMixed', [q, results]));
    const producers = range(P).map((p) => start('produceMixed', [q, p, N]));
    await joinedOk(...producers);
    for (let c = 0; c < C; c++) await q.put(null);
    let total = 0;
    for (let c = 0; c < C; c++) total += await results.get();
    await joinedOk(...consumers);
    assert.is(total, P * N, `round ${round}: items got before the sentinels (left behind them: ${q.qsize()})`);
  }
});

contract('FIFO per producer at maxsize 0, 1, 2, 16, 1000; qsize() stays within 0..maxsize', async () => {
  const PRODUCERS = 3,
    N = 400;
  const controls = range(PRODUCERS).map(() => Pipe<unknown>());
  const producers = controls.map(([, child]) => start('fifoProducer', [child]));
  for (const maxsize of [0, 1, 2, 16, 1000]) {
    const q = open(new Queue<[number, number]>({ maxsize }));
    // The same workers serve every round: the queue reaches them through their control connection.
    controls.forEach(([control], id) => {
      control.send({ q, id, n: N });
    });
    const next = range(PRODUCERS).map(() => 0);
    for (let k = 0; k < PRODUCERS * N; k++) {
      const [id, i] = await q.get();
      assert.is(
        i,
        next[id],
        `maxsize ${maxsize}: producer ${id}'s items out of order (got ${i}, expected ${next[id]})`,
      );
      next[id]++;
      const size = q.qsize();
      assert.ok(size >= 0 && (maxsize === 0 || size <= maxsize), `maxsize ${maxsize}: qsize() is ${size}`);
    }
    for (const [control] of controls) {
      const report = (await control.recv()) as { id: number; maxSeen?: number; minSeen?: number; error?: string };
      assert.is(report.error, undefined, report.error);
      if (maxsize > 0)
        assert.ok(
          report.maxSeen! <= maxsize,
          `maxsize ${maxsize}: producer ${report.id} saw qsize() ${report.maxSeen}`,
        );
      assert.ok(report.minSeen! >= 0, `maxsize ${maxsize}: producer ${report.id} saw qsize() ${report.minSeen}`);
    }
    assert.equal(
      next,
      range(PRODUCERS).map(() => N),
      `maxsize ${maxsize}: every item of every producer`,
    );
    assert.is(q.qsize(), 0, `maxsize ${maxsize}: qsize() after every item was taken`);
    await rejects(q.get({ timeout: 0 }), Empty, `maxsize ${maxsize}: get after every item`);
    q.close();
  }
  for (const [control] of controls) control.send(null);
  await joinedOk(...producers);
});

contract('a producer terminated right after flush() resolved loses no flushed item', async () => {
  const q = open(new Queue<number>());
  const [conn, childConn] = Pipe<string>();
  const counted = new Int32Array(new SharedArrayBuffer(4));
  const p = start('flushThenSpin', [q, childConn, 1_000, 5, counted]);
  assert.is(await conn.recv(), 'flushed');
  await Atomics.waitAsync(counted, 0, 0, 20_000).value; // the extra items are put (and never posted)
  p.terminate();
  await p.join();
  assert.is(p.exitCode, -15);
  for (let i = 0; i < 1_000; i++) assert.is(await q.get({ timeout: 10_000 }), i, `flushed item ${i}`);
  // The 5 items put after the flush never left the spinning thread: they are gone, and the size forgets them
  // once the hub has seen the producer go.
  await eventually(() => q.qsize() === 0, 10_000, 'qsize() back to 0');
  await rejects(q.get({ timeout: 100 }), Empty, 'get after the flushed items');
  q.close();
});

contract('a producer terminated in the middle of put() does not keep its slot (maxsize 1 stays usable)', async () => {
  const q = open(new JoinableQueue<unknown>({ maxsize: 1 }));
  const [conn, childConn] = Pipe<string>();
  const p = start('killedInsidePut', [q, childConn]);
  assert.is(await conn.recv(), 'inside put');
  p.terminate();
  await p.join();
  assert.is(p.exitCode, -15);
  // The hub settles what the dead holder counted but never sent once it sees the holder go.
  await eventually(() => q.qsize() === 0, 10_000, 'qsize() back to 0 after the kill');
  await q.join(); // and nothing is left unfinished
  await q.put('after', { timeout: 10_000 });
  assert.is(q.qsize(), 1);
  assert.is(await q.get({ timeout: 10_000 }), 'after');
  q.taskDone();
  throws(() => q.taskDone(), ProcessError, 'the unfinished count was not left too high or too low');
  assert.is(q.qsize(), 0);
});

// Found by the random producer kills (about 1 in 500): put() counts an item in two cells, the queue's kReserved
// and then its holder's kPutCount, and a thread can be terminated between the two; the hub's repair on departure
// (kPutCount - received) could not see an item counted by the first only, so qsize() stayed one too high for good
// (a bounded queue lost a slot). The worker stops in that window on purpose here.
contract(
  'a producer terminated between its two counting steps leaves the size and unfinished count right',
  async () => {
    const q = open(new JoinableQueue<unknown>({ maxsize: 1 }));
    const [conn, childConn] = Pipe<string>();
    const p = start('diesBetweenCountingSteps', [q, childConn]);
    assert.is(await conn.recv(), 'counted once');
    assert.is(q.qsize(), 1, 'the half-counted item fills the queue while its producer lives');
    p.terminate();
    await p.join();
    assert.is(p.exitCode, -15);
    await eventually(() => q.qsize() === 0, 10_000, 'qsize() back to 0 after the kill');
    await q.join(); // nothing is left unfinished
    await q.put('after', { timeout: 10_000 });
    assert.is(await q.get({ timeout: 10_000 }), 'after');
    q.taskDone();
    throws(() => q.taskDone(), ProcessError, 'the unfinished count was not left too high or too low');
    assert.is(q.qsize(), 0);
  },
);

contract('two workers keep exchanging items while the main thread busy-waits', async () => {
  const N = 1_000;
  const q = open(new Queue<number>());
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const [consumerConn, consumerChild] = Pipe<unknown>();
  const [producerConn, producerChild] = Pipe<unknown>();
  const consumer = start('consumeThenFlag', [q, consumerChild, flag, N]);
  const producer = start('produceOnSignal', [q, producerChild, N]);
  assert.is(await consumerConn.recv(), 'ready');
  assert.is(await producerConn.recv(), 'ready');

  producerConn.send('go');
  // From here on this thread never yields until the consumer's flag is set (or a generous deadline passes).
  const t0 = performance.now();
  let spins = 0;
  while (Atomics.load(flag, 0) === 0 && performance.now() - t0 < 20_000) spins++;
  const ms = performance.now() - t0;
  assert.is(
    Atomics.load(flag, 0),
    1,
    `the consumer got all ${N} items in order while we spun (${ms.toFixed(0)} ms, ${spins} spins)`,
  );
  await joinedOk(producer, consumer);
  q.close();
});

contract('the value is captured when put is called', async () => {
  const q = new Queue<{ list: number[]; nested: { s: string } }>();
  const item = { list: [1], nested: { s: 'a' } };
  await q.put(item);
  item.list.push(2);
  item.nested.s = 'b';
  q.putNowait(item);
  item.list.push(3);
  const first = await q.get();
  assert.equal(first, { list: [1], nested: { s: 'a' } });
  assert.ok(first !== item, 'a copy arrives, not the object');
  assert.equal(await q.get(), { list: [1, 2], nested: { s: 'b' } });
  q.close();

  // A put that waits for a slot still sends the value as it was at the call.
  const b = open(new Queue<{ v: number } | string>({ maxsize: 1 }));
  b.putNowait('first');
  const obj = { v: 1 };
  const pending = later(b.put(obj));
  obj.v = 2;
  assert.is(await b.get(), 'first');
  await pending;
  obj.v = 3;
  assert.equal(await b.get(), { v: 1 });
  b.close();
});

contract('a producer on a bounded queue waits for a slow consumer: qsize() never passes maxsize', async () => {
  const MAXSIZE = 16,
    N = 200;
  const q = open(new Queue<number>({ maxsize: MAXSIZE }));
  const [conn, childConn] = Pipe<unknown>();
  const p = start('boundedProducer', [q, childConn, N]);
  assert.equal(await conn.recv(), { filled: MAXSIZE });
  assert.is(q.qsize(), MAXSIZE);
  assert.is(q.full(), true);
  // The next put has to wait: it cannot report back while nothing is taken.
  assert.is(await conn.poll(300), false, 'a put into a full queue resolved');
  assert.is(q.qsize(), MAXSIZE);

  for (let i = 0; i < N; i++) {
    assert.is(await q.get(), i);
    const size = q.qsize();
    assert.ok(size >= 0 && size <= MAXSIZE, `qsize() is ${size}`);
    await new Promise((resolve) => setImmediate(resolve)); // a slow consumer
  }
  assert.is(await conn.recv(), 'unblocked');
  const report = (await conn.recv()) as { waited: number; maxSeen: number };
  assert.ok(report.waited >= 1, `puts that found the queue full: ${report.waited}`);
  assert.ok(report.maxSeen <= MAXSIZE, `the producer saw qsize() ${report.maxSeen}`);
  await joinedOk(p);
  q.close();
});

contract(
  'what another thread handed over is there for getNowait() at once: after its flush(), or a join()',
  async () => {
    // flush() resolves once the items left the worker, but the hub serves its holders' ports in no set order: the
    // parent's getNowait() request came first and found nothing past the 16 items of the hand-off ring (16 of 20
    // in 2 or 3 fresh runs of 3). And a worker's result put just before its taskDone() waited in its buffer
    // while join() resolved (16 of 20 in 5 runs of 6). Fresh programs, where this showed most.
    for (let i = 0; i < 3; i++) {
      const ran = await run(process.execPath, ['--import', 'tsx', 'test/fixtures/nowait-after-handover.ts'], {
        cwd: root,
        ms: 60_000,
      });
      assert.is(ran.code, 0, ran.stderr);
      assert.equal(JSON.parse(ran.stdout), { afterFlush: 20, afterJoin: 20, afterJoinBusy: 300 }, `run ${i}`);
    }
  },
);

contract('one handle alone: qsize() is exact and getNowait() returns what it just put', async () => {
  const q = open(new Queue<string>());
  q.putNowait('a');
  assert.is(q.qsize(), 1);
  assert.is(q.getNowait(), 'a');
  assert.is(q.qsize(), 0);
  await q.put('b');
  await q.put('c');
  await q.put('d');
  assert.is(q.qsize(), 3);
  assert.is(q.getNowait(), 'b');
  assert.is(q.qsize(), 2);
  assert.is(await q.get(), 'c');
  assert.is(q.getNowait(), 'd');
  assert.is(q.qsize(), 0);
  throws(() => q.getNowait(), Empty);
  q.close();

  const b = open(new Queue<number>({ maxsize: 2 }));
  b.putNowait(1);
  b.putNowait(2);
  assert.is(b.full(), true);
  throws(() => b.putNowait(3), Full);
  assert.is(b.getNowait(), 1);
  assert.is(b.full(), false);
  b.putNowait(3);
  assert.is(b.getNowait(), 2);
  assert.is(b.getNowait(), 3);
  assert.is(b.qsize(), 0);
  b.close();
});

contract('bad arguments are TypeError/RangeError naming the option and the value', async () => {
  const q = open(new Queue<number>({ maxsize: 4 }));
  for (const bad of [-1, -0.5, NaN, -Infinity]) {
    const e1 = await rejects(q.put(1, { timeout: bad }), RangeError, `put timeout ${bad}`);
    assert.match(e1.message, 'options.timeout');
    assert.match(e1.message, String(bad));
    const e2 = await rejects(q.get({ timeout: bad }), RangeError, `get timeout ${bad}`);
    assert.match(e2.message, 'options.timeout');
    assert.match(e2.message, String(bad));
  }
  for (const bad of ['10', null, {}, true, 10n]) {
    await rejects(q.put(1, { timeout: bad as never }), TypeError, `put timeout ${String(bad)}`);
    await rejects(q.get({ timeout: bad as never }), TypeError, `get timeout ${String(bad)}`);
  }
  const typeErr = await rejects(q.put(1, { timeout: '10' as never }), TypeError);
  assert.match(typeErr.message, 'options.timeout');
  assert.match(typeErr.message, '"10"');
  for (const options of [5, 'x', null]) {
    await rejects(q.put(1, options as never), TypeError, `put options ${String(options)}`);
    await rejects(q.get(options as never), TypeError, `get options ${String(options)}`);
  }
  await rejects(q.put(1, { signal: {} as never }), TypeError, 'put signal {}');
  await rejects(q.get({ signal: 'abort' as never }), TypeError, 'get signal "abort"');
  await rejects(q.put(1, { transfer: 'x' as never }), TypeError, 'put transfer "x"');
  assert.match(
    (await rejects(q.put(1, { transfer: [5 as never] }), TypeError, 'put transfer [5]')).message,
    /options\.transfer\[0\] must be .* got 5/,
  );
  assert.ok(isDataCloneError(throws(() => q.putNowait((() => 1) as never), DOMException, 'putNowait(function)')));
  assert.is(q.qsize(), 0, 'no bad call added anything');

  for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53]) {
    const e = throws(() => new Queue({ maxsize: bad }), RangeError, `maxsize ${bad}`);
    assert.match(e.message, 'options.maxsize');
    assert.match(e.message, String(bad));
  }
  for (const bad of ['x', '6', null, true]) {
    const e = throws(() => new Queue({ maxsize: bad as never }), TypeError, `maxsize ${String(bad)}`);
    assert.match(e.message, 'options.maxsize');
  }
  throws(() => new Queue(6 as never), TypeError, 'new Queue(6): options must be an object');
  throws(() => new JoinableQueue({ maxsize: -1 }), RangeError, 'JoinableQueue maxsize -1');
  // An option a call does not take is named, never silently ignored (found: `new SimpleQueue({ maxsize: 3 })`
  // was unbounded).
  assert.match(throws(() => new Queue({ maxSize: 3 } as never), TypeError).message, /unknown option "maxSize"/);
  assert.match((await rejects(q.put(1, { timeOut: 5 } as never), TypeError)).message, /unknown option "timeOut"/);
  assert.match((await rejects(q.get({ timeout: 5, wait: true } as never), TypeError)).message, /unknown option "wait"/);

  await q.put(7);
  assert.is(await q.get(), 7, 'the queue still works');
  q.close();
});

contract('close() wakes every blocked get and put with ClosedError at once', async () => {
  const empty = open(new Queue<number>());
  const full = open(new Queue<number>({ maxsize: 1 }));
  full.putNowait(0);
  const keep = new AbortController();
  const gets = [empty.get(), empty.get({ timeout: 600_000 }), empty.get({ signal: keep.signal })];
  const puts = [full.put(1), full.put(2, { timeout: 600_000 }), full.put(3, { signal: keep.signal })];
  const t0 = performance.now();
  empty.close();
  full.close();
  const errors = await deadline(
    Promise.all([...gets, ...puts].map((p, i) => rejects(p, ClosedError, `blocked call ${i}`))),
    5_000,
    'waking the blocked calls',
  );
  const ms = performance.now() - t0;
  assert.ok(ms < 5_000, `woken after ${ms.toFixed(0)} ms`);
  for (const e of errors) assert.match(e.message, 'queue is closed');
  assert.is(full.qsize(), 1, 'the item put before close is still counted');
});

contract('a blocked put leaves the line on its own timeout or signal, wherever it stands', async () => {
  const q = open(new Queue<number>({ maxsize: 1 }));
  q.putNowait(0);
  const first = later(q.put(1)); // waits for as long as it takes
  // Behind it, a put with a timeout and one with a signal: each gives up on its own, not when `first` is served.
  await rejectsWithin(q.put(2, { timeout: 50 }), Full, 5_000, 'put(2, timeout 50 ms) queued behind a waiting put');
  const ac = new AbortController();
  const third = later(q.put(3, { signal: ac.signal }));
  const reason = new Error('stop waiting');
  ac.abort(reason);
  const { ms, error } = await timed(third);
  assert.is(error, reason, 'rejects with the abort reason');
  assert.ok(ms < 5_000);
  const alreadyAborted = await timed(q.put(9, { signal: AbortSignal.abort(reason) }));
  assert.is(alreadyAborted.error, reason);

  // Those that gave up took no slot; the waiting ones are served in call order.
  const fourth = later(q.put(4));
  const fifth = later(q.put(5));
  assert.is(q.qsize(), 1);
  for (const expected of [0, 1, 4, 5]) assert.is(await q.get(), expected);
  await Promise.all([first, fourth, fifth]);
  assert.is(q.qsize(), 0);
  q.close();
});

contract('when the put at the head of the line gives up, the one behind it gets the next slot', async () => {
  const q = open(new Queue<number>({ maxsize: 1 }));
  q.putNowait(0);
  const head = q.put(1, { timeout: 30 });
  const behind = later(q.put(2));
  await rejectsWithin(head, Full, 5_000, 'the head timing out');
  assert.is(await q.get(), 0);
  await behind;
  assert.is(await q.get({ timeout: 5_000 }), 2);
  assert.is(q.qsize(), 0);
});

contract('get() and put() honour an AbortSignal', async () => {
  const q = open(new Queue<number>());
  const ac = new AbortController();
  const pending = later(q.get({ signal: ac.signal }));
  ac.abort(new Error('enough'));
  assert.is((await rejects(pending, Error)).message, 'enough');
  await rejects(
    q.get({ signal: AbortSignal.abort(new RangeError('early')) }),
    RangeError,
    'get with an aborted signal',
  );
  // The aborted get took nothing: the next item goes to the next get.
  await q.put(1);
  assert.is(await q.get(), 1);
  q.close();
});

contract('put with transfer moves buffers at the call, also for puts that wait for a slot', async () => {
  const q = open(new Queue<ArrayBuffer | number>({ maxsize: 1 }));
  const a = new Uint8Array([1, 2, 3]).buffer;
  await q.put(a, { transfer: [a] });
  assert.is(a.byteLength, 0, 'moved out of this thread');
  assert.equal([...new Uint8Array((await q.get()) as ArrayBuffer)], [1, 2, 3]);

  q.putNowait(0);
  const b = new Uint8Array([4]).buffer;
  const c = new Uint8Array([5, 6]).buffer;
  const pb = later(q.put(b, { transfer: [b] }));
  const pc = later(q.put(c, { transfer: [c] }));
  // Moved at the call, as postMessage moves them: a write meanwhile cannot change what arrives.
  assert.is(b.byteLength, 0, 'a put that waits moves its buffer at the call');
  assert.is(c.byteLength, 0, 'so does the one behind it');
  assert.is(await q.get(), 0);
  await pb;
  assert.is(b.byteLength, 0, 'the first waiting put moved its buffer');
  assert.equal([...new Uint8Array((await q.get()) as ArrayBuffer)], [4]);
  await pc;
  assert.is(c.byteLength, 0, 'the second waiting put moved its buffer');
  assert.equal([...new Uint8Array((await q.get()) as ArrayBuffer)], [5, 6]);
  q.close();
});

contract(
  'items holding host objects are copied as postMessage copies them, or fail at put with its error',
  async () => {
    const q = open(new Queue<unknown>());
    const { port1, port2 } = new MessageChannel();
    let platform: unknown;
    try {
      structuredClone({ port: port1 });
    } catch (error) {
      platform = error;
    }
    // A MessagePort not in the transfer list: the platform refuses it; so does put, at the call, adding nothing.
    const refused = await timed(q.put({ port: port1 }));
    assert.ok(
      refused.error instanceof Error || refused.error instanceof DOMException,
      `put({ port }) without transfer: ${String(refused.error)}`,
    );
    assert.is((refused.error as Error).name, (platform as Error).name);
    assert.is((refused.error as Error).message, (platform as Error).message);
    assert.ok(
      isDataCloneError(
        throws(() => q.putNowait({ f: () => 1, port: port1 }), DOMException, 'putNowait({ function, port })'),
      ),
    );
    assert.is(q.qsize(), 0);
    // Host objects the platform can copy arrive, in order with the items around them.
    const blocks = new BlockList();
    blocks.addAddress('10.0.0.1');
    await q.put('before');
    await q.put({ blocks, blob: new Blob(['blob text']) });
    await q.put({ port: port1 }, { transfer: [port1] });
    await q.put('after');
    assert.is(await q.get(), 'before');
    const copied = (await q.get()) as { blocks: BlockList; blob: Blob };
    assert.ok(
      copied.blocks instanceof BlockList && copied.blocks.check('10.0.0.1') && !copied.blocks.check('10.0.0.2'),
    );
    assert.is(await copied.blob.text(), 'blob text');
    const moved = (await q.get()) as { port: MessagePort };
    moved.port.postMessage('through the moved port');
    assert.is(receiveMessageOnPort(port2)?.message, 'through the moved port');
    assert.is(await q.get(), 'after');
    moved.port.close();
  },
);

contract(
  'sparse arrays keep their holes, and cyclic items are captured at put, on every path an item takes',
  async () => {
    const q = open(new Queue<any>());
    const a: unknown[] = [];
    a[1] = 1;
    const cyclic = { value: a };
    a[2] = cyclic; // a sparse array inside a cycle
    let deep: unknown = [, 'bottom'];
    for (let i = 0; i < 20; i++) deep = { deep }; // deeper than the quick handle scan looks
    const withHost = { blob: new Blob(['b']), holes: [, 2] }; // travels as values: the encoder declines the Blob
    const buf = new ArrayBuffer(1);
    const withTransfer = { buf, holes: [, 3] };
    const withHandle = { inner: open(new Queue<string>()), holes: [, 4] };
    await q.put(cyclic);
    a[0] = 'changed after put';
    await q.put(deep);
    await q.put(withHost);
    await q.put(withTransfer, { transfer: [buf] });
    await q.put(withHandle);

    const c = await q.get();
    assert.equal(Object.keys(c.value), ['1', '2'], 'cyclic item: holes kept, later change not seen');
    assert.is(c.value[2], c, 'the cycle is kept');
    let d = await q.get();
    for (let i = 0; i < 20; i++) d = d.deep;
    assert.equal(Object.keys(d), ['1'], 'deep item: holes kept');
    assert.equal(Object.keys((await q.get()).holes), ['1'], 'item with a host object: holes kept');
    assert.equal(Object.keys((await q.get()).holes), ['1'], 'item put with transfer: holes kept');
    const h = await q.get();
    assert.ok(h.inner instanceof Queue, 'the handle inside is revived');

    // A put that waits for a slot snapshots a cyclic item at the call too.
    const b = open(new Queue<any>({ maxsize: 1 }));
    b.putNowait('first');
    const loop: Record<string, unknown> = { n: 1 };
    loop.self = loop;
    const pending = later(b.put(loop));
    loop.n = 2;
    assert.is(await b.get(), 'first');
    await pending;
    const got = await b.get();
    assert.is(got.n, 1, 'a waiting put of a cyclic item sends it as it was at the call');
    assert.is(got.self, got);
  },
);

contract(
  'a consumer terminated while blocked in get(), or with items pushed to its window, does not wedge the queue',
  async () => {
    const pushed = open(new Queue<number>());
    const empty = open(new Queue<string>());
    for (let i = 0; i < 5; i++) pushed.putNowait(i); // one batch: the hub pushes all of it to the lone consumer
    const [conn, childConn] = Pipe<unknown>();
    const p = start('holdPushedThenBlock', [pushed, empty, childConn]);
    assert.is(await conn.recv(), 0);
    assert.is(await conn.recv(), 'blocked');
    p.terminate();
    await p.join();
    assert.is(p.exitCode, -15);

    await empty.put('after');
    assert.is(await deadline(empty.get(), 10_000, 'get after the blocked consumer died'), 'after');
    for (let i = 1; i < 5; i++) assert.is(await deadline(pushed.get(), 10_000, `pushed item ${i}`), i);
    assert.is(pushed.qsize(), 0);
    await rejects(pushed.get({ timeout: 0 }), Empty);
    pushed.close();
    empty.close();
  },
);

contract(
  'a program that never closes its queues exits by itself',
  async () => {
    const child = spawn('npx', ['tsx', fileURLToPath(tasks)], {
      cwd: root,
      env: { ...process.env, MPTHREADS_QUEUE_PROGRAM: 'never-close' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: npx, tsx and node can be killed together if it hangs
    });
    let stdout = '',
      stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const code = await deadline(exited, 25_000, 'the program');
      assert.is(code, 0, `exit code (stderr: ${stderr})`);
    } finally {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    }
    assert.equal(
      JSON.parse(stdout.trim()),
      { echoed: 'hello', exitCode: 0, empty: 'Empty', timedOut: 'Full', blocked: 'ClosedError' },
      stdout,
    );
  },
  40_000,
);

contract('queues travel nested in args, through a Connection and through another queue', async () => {
  const viaArgs = open(new Queue<string>());
  const viaConn = open(new SimpleQueue<string>());
  const outer = open(new Queue<{ inner: JoinableQueue<string> }>());
  const inner = open(new JoinableQueue<string>());
  const [control, childControl] = Pipe<unknown>();
  const p = start('queueRelay', [childControl, { deep: { list: [viaArgs] } }, outer]);

  assert.is(await viaArgs.get(), 'nested args: true');
  control.send({ q: viaConn });
  assert.is(await viaConn.get(), 'via connection: true');
  await outer.put({ inner });
  assert.is(await inner.get(), 'via queue: true');
  inner.taskDone(); // lets the worker's inner.join() resolve

  const { mine } = (await control.recv()) as { mine: Queue<string> };
  assert.ok(mine instanceof Queue, 'a queue made in a worker arrives as a Queue');
  await mine.put('hi');
  assert.is(await control.recv(), "worker's own queue got: hi");

  // Queues are shared, not moved: the sender's handles still work.
  await viaConn.put('still mine');
  assert.is(await viaConn.get(), 'still mine');
  await viaArgs.put('still mine too');
  assert.is(viaArgs.getNowait(), 'still mine too');

  control.send('bye');
  await joinedOk(p);
});

// --- edges found by an outside check (issue 10) ---------------------------------------------------------
contract(
  'a put made from inside the capture of another put of the same queue (a getter, serialize()) corrupts nothing',
  async () => {
    // Both were encoded into the holder's one batch at once: fields shifted, items were lost, and a getNowait()
    // from a getter flushed the batch half-written (the next get threw an InternalError).
    for (const make of [
      () => new Queue<unknown>(),
      () => new SimpleQueue<unknown>(),
      () => new JoinableQueue<unknown>(),
    ]) {
      const q = make() as Queue<unknown>;
      const name = q.constructor.name;
      await q.put('z'.repeat(2_000)); // held in the batch: the next put goes there too, not to the hand-off ring
      let reads = 0;
      await q.put({
        a: 'A',
        get b() {
          if (reads++ === 0) void q.put('inner');
          return 'B';
        },
        c: ['C', 1],
      });
      await q.put('last');
      const got: unknown[] = [];
      for (let i = 0; i < 4; i++) got.push(await deadline(q.get(), 10_000, `${name}: item ${i}`));
      assert.equal(got, ['z'.repeat(2_000), { a: 'A', b: 'B', c: ['C', 1] }, 'inner', 'last'], name);
      q.close();
    }
    const q = new Queue<unknown>();
    await q.put('z'.repeat(2_000));
    await q.put({
      get x() {
        try {
          return q.getNowait(); // inside a put of this queue: sees what was handed over, or nothing
        } catch (error) {
          return (error as Error).name;
        }
      },
    });
    const first = await deadline(q.get(), 10_000, 'the first item left');
    const second = await deadline(q.get(), 10_000, 'the second');
    assert.ok(
      (first === 'z'.repeat(2_000) && typeof second === 'object') || typeof first === 'object',
      'items whole, none lost',
    );
    q.close();
  },
);

contract('get() with a signal already aborted rejects with its reason, with timeout 0 too', async () => {
  // With timeout 0 it returned the item.
  const q = new Queue<number>();
  await q.put(1);
  const reason = new Error('stop');
  const signal = AbortSignal.abort(reason);
  assert.is(await rejects(q.get({ signal }), Error), reason);
  assert.is(await rejects(q.get({ signal, timeout: 0 }), Error), reason);
  assert.is(await q.get({ timeout: 0 }), 1, 'the item is still there');
  q.close();
});

contract(
  "items of threads taking turns come out in the order of the turns, as Python's SimpleQueue's (a Queue's too)",
  async () => {
    // Three producers pass a turn around with semaphores, each putting one item per turn and releasing the next
    // at once. A put made after another thread's (which released the turn to it) came out first: the puts sat
    // in their threads' buffers past the release, and the hub served its ports in no set order (one port's
    // messages kept coming first while another's waited), 90-300 of 600 items out of order in a review.
    for (const kind of ['SimpleQueue', 'Queue'] as const) {
      const q = open(kind === 'Queue' ? new Queue<string>() : new SimpleQueue<string>());
      const rounds = 150;
      const turns = [new Semaphore(1), new Semaphore(0), new Semaphore(0)];
      const producers = turns.map((mine, id) => start('putInTurn', [q, id, rounds, mine, turns[(id + 1) % 3]]));
      const got: string[] = [];
      for (let i = 0; i < 3 * rounds; i++) {
        const item = await q.get({ timeout: 30_000 });
        got.push(item.slice(0, item.lastIndexOf(':')));
      }
      for (const p of producers) await p.join();
      const expected = Array.from({ length: 3 * rounds }, (_, k) => `${k % 3}:${Math.floor(k / 3)}`);
      const wrong = got.findIndex((item, k) => item !== expected[k]);
      assert.is(
        wrong,
        -1,
        `${kind}: at ${wrong}, got ${got.slice(wrong, wrong + 4)}, expected ${expected.slice(wrong, wrong + 4)}`,
      );
    }
  },
);

contract(
  'the order holds when a getter of an item being put sets an Event, and after a put the platform refused',
  async () => {
    // (1) A getter runs while its item is encoded: an Event.set() there found the queue in the middle of the put,
    // could not post it, and forgot it was holding puts, so the next set() did not post them first: the child's
    // put, made after that set(), came out first (found by review). (2) A put whose post the platform refused
    // (a port twice in its transfer list) had taken a number: the hub held every later put back for it.
    const q = open(new JoinableQueue<unknown>());
    const ready = new Event();
    const go = new Event();
    const flag = new Int32Array(new SharedArrayBuffer(4));
    const p = start('putAfterEvent', [q, ready, go, flag]);
    assert.ok(await ready.wait(20_000));
    const { port1 } = new MessageChannel();
    await rejects(q.put({ port1 }, { transfer: [port1, port1] }), DOMException, 'a port twice in the transfer list');
    port1.close();
    const other = new Event();
    await q.put('A');
    const item = {};
    Object.defineProperty(item, 'x', {
      enumerable: true,
      get: () => {
        other.set();
        return 1;
      },
    });
    await q.put(item);
    go.set(); // posts A and the item first: the child puts C after this
    // No turn of the event loop (it would post them anyway) and no blocking call (it posts them too) until the
    // child's C is in: a raw flag.
    for (const end = performance.now() + 20_000; Atomics.load(flag, 0) === 0 && performance.now() < end; );
    const got: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      const v = await q.get({ timeout: 20_000 });
      got.push(typeof v === 'string' ? v : 'item');
      q.taskDone();
    }
    assert.equal(got, ['A', 'item', 'C']);
    await p.join();
  },
);

contract(
  'a get() on an empty queue no other thread holds fails with ERR_DEADLOCK once nothing is left to put',
  async () => {
    // It kept the program alive for good (the review's probe: killed after 20 s); a blocking getSync() there
    // throws ERR_DEADLOCK at the call. A get that this thread's own timer, or a put through the hub, ends still
    // gets its item.
    // Then what a review of that change found: a get whose queue is shared after it began, a putSync() from a
    // timer (through the hub), and gets bounded by a timeout or a signal while the hub starts, all ended early.
    const ran = await runTsProgram(
      (lib) => `
      import { JoinableQueue, Pipe, Process, Queue, isMainThread, type Connection } from ${lib};
      export async function lonely() { await new Queue<number>().get(); }
      export async function shareAfterGet(conn: Connection<unknown>) {
        const q = new Queue<number>();
        const got = q.get();
        conn.send(q); // shared after the get began: the parent puts
        conn.send(await got);
      }
      export async function getOne(q: Queue<number>) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        await q.get();
      }
      export async function putLater(q: Queue<number>) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        await q.put(7);
      }
      const code = (error: unknown) => (error as { code?: string }).code;
      if (isMainThread) {
        const bounded = new Queue<number>(); // in a fresh program: the hub is still starting
        console.log(await bounded.get({ timeout: 100 }).catch(code));
        console.log(await bounded.get({ signal: AbortSignal.timeout(100) }).catch((e) => e.name)); // its reason
        const q = new Queue<string>();
        setTimeout(() => q.put('small'), 20);
        console.log(await q.get());
        setTimeout(() => q.put('big'.repeat(1_000)), 20); // past the hand-off ring's slot: through the hub
        console.log((await q.get()).length);
        setTimeout(() => q.putSync('big'.repeat(1_000)), 20);
        console.log((await q.get()).length);
        const jq = new JoinableQueue<number>(); // never through the ring
        setTimeout(() => jq.putSync(1), 20);
        console.log(await jq.get());
        const [here, there] = Pipe<unknown>();
        const child = new Process({ target: shareAfterGet, module: import.meta.url, args: [there] });
        child.start();
        const shared = (await here.recv()) as Queue<number>;
        await shared.put(42);
        console.log(await here.recv());
        const later = new Queue<number>();
        const got = later.get();
        const daemon = new Process({ target: putLater, module: import.meta.url, args: [later], daemon: true });
        daemon.start(); // shared after the get began, with a daemon that keeps nothing alive
        console.log(await got);
        const p = new Process({ target: lonely, module: import.meta.url });
        p.start();
        await p.join();
        console.log(p.exitCode, code(p.error));
        console.log(await new Queue<number>().get().catch(code));
        const full = new Queue<number>({ maxsize: 1 }); // a put waits for a slot only this thread could free
        await full.put(1);
        console.log(await full.put(2).catch(code));
        setTimeout(() => full.get(), 20); // ... and this thread frees it
        console.log(await full.put(3));
        const fullShared = new Queue<number>({ maxsize: 1 });
        await fullShared.put(1);
        const putting = fullShared.put(2);
        new Process({ target: getOne, module: import.meta.url, args: [fullShared], daemon: true }).start();
        console.log(await putting);
      }
    `,
    );
    assert.is(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout.trim().split('\n'), [
      'Empty',
      'TimeoutError',
      'small',
      '3000',
      '3000',
      '1',
      '42',
      '7',
      '1 ERR_DEADLOCK',
      'ERR_DEADLOCK',
      'ERR_DEADLOCK',
      'undefined',
      'undefined',
    ]);
  },
);

const edges = suite("Queue: a queue outlives its creator; a worker's exit hands its items over");
edges.after.each(closeQueues);

// Found: with a queue made in a worker, once that worker exited, a sibling's get() and a blocked put() hung,
// flushed items never arrived (get() said Empty while qsize() said 3), new items vanished, and getNowait()
// blocked for 5 s. Queues now live in one hub per process, as long as any thread holds them.
edges('a queue made in a worker that exited keeps its items, its waiting calls and its new items', async () => {
  const [conn, childConn] = Pipe<unknown>();
  const maker = start('makeQueuesAndExit', [childConn]);
  const { items, full } = (await conn.recv()) as { items: Queue<string>; full: Queue<string> };
  open(items);
  open(full);
  await joinedOk(maker);
  assert.is(items.qsize(), 3);
  const t0 = performance.now();
  assert.is(items.getNowait(), 'a', 'getNowait() after the creator exited');
  assert.ok(performance.now() - t0 < 2_000, `getNowait() took ${(performance.now() - t0).toFixed(0)} ms`);
  assert.is(await items.get({ timeout: 10_000 }), 'b');
  assert.is(await items.get({ timeout: 10_000 }), 'c');
  // A sibling's get() that waits, served by a put made after the creator exited.
  const [sib, sibChild] = Pipe<unknown>();
  const sibling = start('getOne', [items, sibChild]);
  assert.is(await sib.recv(), 'waiting');
  await items.put('new');
  assert.is(await sib.recv(), 'new');
  await joinedOk(sibling);
  // A put blocked on the full queue, freed by a get in another thread.
  assert.ok(full.full());
  const blocked = full.put('second', { timeout: 20_000 });
  const [other, otherChild] = Pipe<unknown>();
  const getter = start('getOne', [full, otherChild]);
  assert.is(await other.recv(), 'waiting');
  assert.is(await other.recv(), 'first');
  await blocked;
  await joinedOk(getter);
  assert.is(await full.get({ timeout: 10_000 }), 'second');
});

// Found: a worker that called process.exit() right after putNowait() or resolved puts, or died of an uncaught
// exception in a timer, lost those items silently. Python flushes at sys.exit(); a worker now hands its
// buffered items over when it exits, however it exits (but terminate()).
edges(
  'items a worker put are delivered when it calls process.exit(), dies of an uncaught exception, or returns',
  async () => {
    const q = open(new Queue<string>());
    for (const [how, code] of [
      ['exit', 3],
      ['throw-in-timer', 1],
      ['return', 0],
    ] as const) {
      const p = start('putThenEnd', [q, how]);
      // The uncaught exception's traceback is printed, as the contract says: captured and checked here.
      const { stderr } = await captureStderr(() => p.join());
      if (how === 'throw-in-timer') assert.match(stderr, /Process .* \(pid \d+\):\nError: uncaught in a timer/);
      assert.is(p.exitCode, code, `${how}: exit code`);
      assert.equal(
        [await q.get({ timeout: 10_000 }), await q.get({ timeout: 10_000 })],
        [`${how}: putNowait`, `${how}: await put`],
        how,
      );
    }
  },
);

// Found: every queue dropped without close() kept about 72 KiB for good (4 x 1,000 queues took heap and
// external memory from 81 to 293 MiB). A handle nobody can reach is now collected and its port closed.
edges(
  'queues dropped without close() are released: 4 x 1,000 of them leave heap and external memory flat',
  async () => {
    const program = `
    import { Queue, JoinableQueue } from ${JSON.stringify(new URL('../lib/index.ts', import.meta.url).href)};
    const settle = async () => { for (let i = 0; i < 4; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); } };
    const memory = () => { const m = process.memoryUsage(); return m.heapUsed + m.external; };
    const round = async () => {
      for (let i = 0; i < 1000; i++) {
        const q = i % 2 ? new Queue() : new JoinableQueue({ maxsize: 10 });
        await q.put({ i, text: 'x'.repeat(100) });
        await q.get();
      }
    };
    await round(); // warm up: the hub, code, caches
    await settle();
    const before = memory();
    for (let r = 0; r < 4; r++) await round();
    await settle();
    console.log(JSON.stringify({ perQueue: (memory() - before) / 4000 }));`;
    const ran = await run(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', program], {
      cwd: root,
      ms: 120_000,
    });
    assert.is(ran.code, 0, ran.stderr);
    const { perQueue } = JSON.parse(ran.stdout.trim()) as { perQueue: number };
    assert.ok(perQueue < 1024, `each dropped queue kept ${perQueue.toFixed(0)} B`);
  },
  150_000,
);

// Found: a sparse array of length 2^32-1 hung Connection.send, a put() that waits for a slot, and Process args
// for over 15 s each, because the library walked it index by index (structuredClone takes 0 ms).
edges(
  'a sparse array of length 2^32-1 costs what it holds: through send(), a put() that waits, and Process args',
  async () => {
    const sparse: unknown[] = [];
    sparse[2 ** 32 - 2] = 'last';
    sparse[3] = 'three';
    const t0 = performance.now();
    const [a, b] = Pipe<unknown[]>();
    a.send(sparse);
    const viaPipe = await b.recv({ timeout: 10_000 });
    assert.equal([viaPipe.length, Object.keys(viaPipe)], [2 ** 32 - 1, ['3', '4294967294']]);
    const q = open(new Queue<unknown[]>({ maxsize: 1 }));
    await q.put(['first']);
    const waiting = q.put(sparse, { timeout: 20_000 }); // captured now, while it waits for the slot
    assert.equal(await q.get(), ['first']);
    await waiting;
    const viaQueue = await q.get({ timeout: 10_000 });
    assert.equal([viaQueue.length, Object.keys(viaQueue)], [2 ** 32 - 1, ['3', '4294967294']]);
    const [mine, theirs] = Pipe<unknown>();
    const p = start('reportArray', [theirs, sparse]);
    assert.equal(await mine.recv({ timeout: 30_000 }), { length: 2 ** 32 - 1, keys: ['3', '4294967294'] });
    await joinedOk(p);
    a.close();
    b.close();
    // A bound only a walk over the length could break (minutes); the worker's start is in it, so it is generous.
    assert.ok(performance.now() - t0 < 15_000, `took ${(performance.now() - t0).toFixed(0)} ms`);
  },
);

contract.run();
edges.run();
