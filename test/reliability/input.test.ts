// Bad input (issue 5, part 4), at CI sizes: hostile values round-trip through a Pipe and a Queue across a worker
// exactly as structuredClone copies them; values that cannot be copied fail at the call with the platform's
// error and leave the channel usable; a failed transfer moves nothing; 64 MiB messages arrive intact within
// 3x their size of extra RSS.
import fc from 'fast-check';
import { MessageChannel } from 'node:worker_threads';
import * as assert from 'uvu/assert';
import { Pipe, Queue } from '../../lib/index.ts';
import { nested } from '../fixtures/reliability-tasks.ts';
import { Agent, stopAll, tasks } from './agents.ts';
import { runScenario } from './child.ts';
import { figure } from './figures.ts';
import { TicketClock } from './history.ts';
import { cloneDiff, deepNesting, hostile, large, preview, withCycles } from './oracle.ts';
import {
  pipeRoundTrip,
  queueRoundTrip,
  roundTripProperty,
  startEcho,
  type BigResult,
  type Echo,
} from './scenarios-input.ts';
import { openQueues, rejects, startTask, suite } from '../_support/harness.ts';
import { kMaxDepth } from '../../lib/wire/format.ts';

const seed = process.env.MPTHREADS_SEED === undefined ? undefined : Number(process.env.MPTHREADS_SEED);

// ---------------------------------------------------------------------------------------------------------
const oracle = suite('reliability: the clone oracle');

oracle('equal for two structuredClones of any hostile value', () => {
  const d = fc.check(
    fc.property(hostile, (v) => cloneDiff(structuredClone(v), structuredClone(v)) === undefined),
    { numRuns: 300, ...(seed === undefined ? {} : { seed }) },
  );
  assert.not.ok(d.failed, `seed ${d.seed}: ${(d.errorInstance as Error)?.message} for ${preview(d.counterexample, 5)}`);
});

oracle('finds each planted difference', () => {
  const sparse: unknown[] = [1, , 3];
  const shared = { s: 1 };
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  const cases: [unknown, unknown][] = [
    [0, -0],
    [NaN, 0],
    [1n, 1],
    [sparse, [1, undefined, 3]],
    [
      { a: 1, b: 2 },
      { b: 2, a: 1 },
    ],
    [
      [shared, shared],
      [{ s: 1 }, { s: 1 }],
    ],
    [cyclic, { a: 1, self: { a: 1, self: {} } }],
    [new Map([[1, 2]]), new Map([[1, 3]])],
    [new Set([1, 2]), new Set([2, 1])],
    [new Uint8Array([1, 2]), new Uint8Array([1, 3])],
    [new Uint8Array([1, 2]), new Int8Array([1, 2])],
    [new TypeError('x'), new RangeError('x')],
    [new Date(0), new Date(1)],
    [/a/g, /a/i],
    [Object(1), 1],
  ];
  for (const [a, b] of cases)
    assert.ok(
      cloneDiff(structuredClone(a), structuredClone(b)) !== undefined,
      `no difference found between ${String(a)} and ${String(b)}`,
    );
  assert.is(cloneDiff(structuredClone(cyclic), structuredClone(cyclic)), undefined);
  assert.is(
    cloneDiff(
      structuredClone(withCycles({ x: [1, { y: 2 }] }, 7)),
      structuredClone(withCycles({ x: [1, { y: 2 }] }, 7)),
    ),
    undefined,
  );
});

oracle.run();

// ---------------------------------------------------------------------------------------------------------
const clock = new TicketClock();
let agents: Agent[] = [];
let echo: Echo | undefined;
const trips = suite('reliability: hostile values across a worker', 120_000);
const { open } = openQueues(trips);
trips.before(async () => {
  agents = await Agent.start(1, clock);
  echo = startEcho(agents[0]!);
});
trips.after(async () => {
  await echo?.stop();
  await stopAll(agents);
});

trips(
  'property: hostile values round-trip main -> worker -> main through a Pipe as structuredClone copies them',
  async () => {
    const r = await roundTripProperty(hostile, (v) => pipeRoundTrip(echo!, v), {
      numRuns: 200,
      ...(seed === undefined ? {} : { seed }),
    });
    figure('hostile values through a Pipe, round trips', r.runs, 'values', `${r.ms.toFixed(0)} ms`);
    assert.is(r.failure, undefined, r.failure);
  },
);

trips(
  'property: hostile values round-trip through a Queue (put -> worker get/put -> get), captured at put',
  async () => {
    const r = await roundTripProperty(hostile, (v) => queueRoundTrip(echo!, [v]), {
      numRuns: 200,
      ...(seed === undefined ? {} : { seed }),
    });
    figure('hostile values through a Queue, round trips', r.runs, 'values', `${r.ms.toFixed(0)} ms`);
    assert.is(r.failure, undefined, r.failure);
  },
);

trips(
  'property: batches of hostile values (one batch, mixed encodings) through a Queue keep order and content',
  async () => {
    const r = await roundTripProperty(
      fc.array(hostile, { minLength: 2, maxLength: 25 }),
      (vs) => queueRoundTrip(echo!, vs),
      { numRuns: 60, ...(seed === undefined ? {} : { seed }) },
    );
    assert.is(r.failure, undefined, r.failure);
  },
);

// Found by this suite: a second pass that revived handles in Process args, in Pipe messages carrying a handle,
// and in some Queue items (cyclic, deep, or put with `transfer`) assigned every index of an array, so the holes
// of a sparse array arrived as undefined elements. Since 4eb341f every path captures a value in the encoder's one
// walk (lib/wire/encode.ts), which writes an array with holes as a sparse array, and the decoder rebuilds the
// handles in place: the holes stay holes, as structuredClone keeps them. These are the paths that lost them.
trips(
  'sparse arrays keep their holes in Process args, in Pipe messages carrying a handle, and through a Queue',
  async () => {
    const sparse = () => {
      const a: unknown[] = [];
      a[1] = 'x';
      a.length = 3;
      return a;
    };
    const outcomes: Record<string, string[]> = {};
    // Queue: a cyclic item, and an item put with a transfer list.
    const q = open(new Queue<any>());
    const cyclic: { value: unknown[] } = { value: sparse() };
    cyclic.value[2] = cyclic;
    await q.put(cyclic);
    outcomes.queueCyclic = Object.keys((await q.get()).value);
    const buf = new ArrayBuffer(8);
    await q.put({ a: sparse(), buf }, { transfer: [buf] });
    outcomes.queueTransfer = Object.keys((await q.get()).a);
    // Pipe: a message that carries a handle.
    const [x, y] = Pipe<any>();
    const [, other] = Pipe<any>();
    x.send({ a: sparse(), other });
    outcomes.pipeWithHandle = Object.keys((await y.recv()).a);
    x.close();
    y.close();
    // Process args.
    const [mine, theirs] = Pipe<string[]>();
    const p = startTask(tasks, 'reportKeys', [theirs, sparse()]);
    outcomes.processArgs = await mine.recv();
    await p.join();
    const expected: Record<string, string[]> = {
      queueCyclic: ['1', '2'],
      queueTransfer: ['1'],
      pipeWithHandle: ['1'],
      processArgs: ['1'],
    };
    const wrong = Object.entries(outcomes).filter(([k, keys]) => JSON.stringify(keys) !== JSON.stringify(expected[k]));
    assert.equal(
      wrong,
      [],
      `own keys of [ <hole>, 'x', <hole> ] after the trip: ${JSON.stringify(outcomes)}, expected ${JSON.stringify(expected)}`,
    );
  },
);

trips('one object put twice in a batch, mutated in between, arrives as two copies of its two states', async () => {
  const o: Record<string, unknown> = { n: 1, inner: { k: [1] } };
  const values: unknown[] = [];
  // queueRoundTrip mutates after each put; add our own change between the two puts of the same object.
  const expected = [structuredClone(o)];
  await echo!.qIn.put({ n: echo!.next++, value: o });
  o.n = 2;
  (o.inner as { k: number[] }).k.push(2);
  expected.push(structuredClone(o));
  await echo!.qIn.put({ n: echo!.next++, value: o });
  for (let i = 0; i < 2; i++) values.push(((await echo!.qOut.get({ timeout: 15_000 })) as { value: unknown }).value);
  assert.is(cloneDiff(values[0], expected[0]), undefined);
  assert.is(cloneDiff(values[1], expected[1]), undefined);
  assert.ok(values[0] !== values[1]);
});

trips(
  `large and deep values: 50,000-key objects, nesting up to the limit (${kMaxDepth} levels), through both`,
  async () => {
    const samples = [...fc.sample(large, { numRuns: 2, seed: 1 }), ...fc.sample(deepNesting, { numRuns: 3, seed: 2 })];
    // The wire's limit is below what structuredClone rebuilds on the main thread here (so every thread can).
    const limit = platformDepth();
    figure('structuredClone nesting limit on the main thread (under uvu)', limit, 'levels');
    assert.ok(limit > kMaxDepth, `structuredClone rebuilds only ${limit} levels here`);
    samples.push(nested(kMaxDepth - 1)); // the round trip wraps each value in one more object
    let tripped = 0;
    for (const v of samples) {
      await pipeRoundTrip(echo!, v); // each throws with the first difference
      await queueRoundTrip(echo!, [v]);
      tripped++;
    }
    assert.is(tripped, samples.length);
  },
);

// Values that cannot be copied: what the platform's structuredClone throws for each is the expectation.
function uncloneables(): [string, () => unknown][] {
  const { port1 } = new MessageChannel();
  port1.unref();
  class Thrower {
    get boom(): never {
      throw new RangeError('getter throws on purpose');
    }
  }
  return [
    ['a function', () => () => 1],
    ['a symbol', () => Symbol('s')],
    ['a function deep inside a Map', () => ({ a: [1, { m: new Map([['k', { f() {} }]]) }] })],
    ['a WeakMap', () => new WeakMap()],
    ['a Proxy', () => new Proxy({}, {})],
    ['a Promise', () => Promise.resolve(1)],
    [
      'a getter that throws',
      () => {
        const o = {};
        Object.defineProperty(o, 'boom', {
          enumerable: true,
          get: Object.getOwnPropertyDescriptor(Thrower.prototype, 'boom')!.get,
        });
        return o;
      },
    ],
    ['a MessagePort not in the transfer list', () => ({ port: port1 })],
  ];
}

/** About how deep a value structuredClone can copy (and copy again) on this thread's stack. */
function platformDepth(): number {
  const ok = (d: number) => {
    try {
      structuredClone(structuredClone(nested(d)));
      return true;
    } catch {
      return false;
    }
  };
  let lo = 10;
  let hi = 50_000;
  while (hi - lo > 20) {
    const mid = (lo + hi) >> 1;
    if (ok(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

function platformError(make: () => unknown): Error {
  try {
    structuredClone(make());
  } catch (error) {
    return error as Error;
  }
  throw new Error('structuredClone accepted it');
}

function sameError(actual: unknown, expected: Error): string | undefined {
  const a = actual as Error;
  if (a?.constructor !== expected.constructor || a?.name !== expected.name) {
    return `${a?.constructor?.name} ${a?.name}: ${a?.message} (structuredClone throws ${expected.constructor.name} ${expected.name}: ${expected.message})`;
  }
  return undefined;
}

trips(
  'Pipe.send of a value that cannot be copied throws the platform error at the call; the pipe stays usable',
  async () => {
    const problems: string[] = [];
    for (const [what, make] of uncloneables()) {
      const expected = platformError(make);
      let thrown: unknown;
      try {
        echo!.conn.send({ n: -1, value: make() });
      } catch (error) {
        thrown = error;
      }
      if (thrown === undefined) problems.push(`${what}: send did not throw`);
      else {
        const diff = sameError(thrown, expected);
        if (diff !== undefined) problems.push(`${what}: ${diff}`);
      }
      // Nothing was sent: the next round trip gets its own message back, not a broken one.
      await pipeRoundTrip(echo!, { after: what });
    }
    assert.equal(problems, []);
  },
);

trips(
  'Queue.put/putNowait of a value that cannot be copied fail at the call (platform error), size unchanged, queue usable',
  async () => {
    const problems: string[] = [];
    // A MessagePort not in the transfer list used to fail with a plain Error (v8.Serializer's host-object path),
    // not the platform's error: found by this suite, fixed in the encoder since.
    for (const [what, make] of uncloneables()) {
      const expected = platformError(make);
      const q = echo!.qIn;
      const size = q.qsize();
      const viaPut = await q.put({ n: -1, value: make() }).then(
        () => undefined,
        (e: unknown) => e ?? 'rejected with nothing',
      );
      let viaNowait: unknown;
      try {
        q.putNowait({ n: -1, value: make() });
      } catch (e) {
        viaNowait = e;
      }
      for (const [how, thrown] of [
        ['put', viaPut],
        ['putNowait', viaNowait],
      ] as const) {
        if (thrown === undefined) problems.push(`${what}: ${how} did not fail`);
        else {
          const diff = sameError(thrown, expected);
          if (diff !== undefined) problems.push(`${what}: ${how}: ${diff}`);
        }
      }
      if (q.qsize() !== size) problems.push(`${what}: qsize() went from ${size} to ${q.qsize()}`);
      // Items before and after a failed put arrive, in order, with nothing in between.
      await queueRoundTrip(echo!, [{ before: what }, { after: what }]);
    }
    assert.equal(problems, []);
  },
);

trips('a transfer list that fails transfers nothing: the ArrayBuffer is still usable (Pipe and Queue)', async () => {
  const problems: string[] = [];
  const failing: [string, (buf: ArrayBuffer) => [unknown, ArrayBuffer[] | unknown[]]][] = [
    ['an uncloneable value beside it', (buf) => [{ buf, f: () => 1 }, [buf]]],
    ['the same buffer listed twice', (buf) => [{ buf }, [buf, buf]]],
    ['a non-transferable object in the list', (buf) => [{ buf }, [buf, { not: 'transferable' }]]],
  ];
  for (const [what, make] of failing) {
    for (const via of ['pipe', 'queue'] as const) {
      const buf = new ArrayBuffer(1024);
      new Uint8Array(buf).fill(7);
      const [value, transfer] = make(buf);
      let failed = false;
      try {
        if (via === 'pipe') echo!.conn.send(value, { transfer: transfer as ArrayBuffer[] });
        else await echo!.qIn.put(value, { transfer: transfer as ArrayBuffer[] });
      } catch {
        failed = true;
      }
      if (!failed) problems.push(`${via}, ${what}: did not fail`);
      if (buf.byteLength !== 1024 || new Uint8Array(buf).some((b) => b !== 7))
        problems.push(`${via}, ${what}: the buffer was moved or changed (byteLength ${buf.byteLength})`);
      if (via === 'pipe') await pipeRoundTrip(echo!, { after: what });
      else await queueRoundTrip(echo!, [{ after: what }]);
    }
  }
  assert.equal(problems, []);
});

trips('a transfer that succeeds moves the buffer (detached here) and it arrives intact (Pipe and Queue)', async () => {
  for (const via of ['pipe', 'queue'] as const) {
    const buf = new ArrayBuffer(4096);
    new Uint8Array(buf).forEach((_, i, a) => {
      a[i] = i & 0xff;
    });
    const n = echo!.next++;
    if (via === 'pipe') echo!.conn.send({ n, value: buf }, { transfer: [buf] });
    else await echo!.qIn.put({ n, value: buf }, { transfer: [buf] });
    assert.is(buf.byteLength, 0, `${via}: the sender's buffer is not detached`);
    const back = (
      via === 'pipe' ? await echo!.conn.recv({ timeout: 15_000 }) : await echo!.qOut.get({ timeout: 15_000 })
    ) as { n: number; value: ArrayBuffer };
    assert.is(back.n, n);
    assert.ok(
      new Uint8Array(back.value).every((b, i) => b === (i & 0xff)),
      `${via}: content differs`,
    );
  }
});

trips(
  `a value nested deeper than ${kMaxDepth} levels fails at the call with DataCloneError; the channel stays usable`,
  async () => {
    for (const levels of [kMaxDepth + 1, 5_000, 50_000]) {
      const deep = nested(levels);
      let thrown: unknown;
      try {
        echo!.conn.send(deep);
      } catch (e) {
        thrown = e;
      }
      assert.ok(
        thrown instanceof DOMException && thrown.name === 'DataCloneError',
        `Pipe.send of ${levels} levels: ${String(thrown)}`,
      );
      await pipeRoundTrip(echo!, { after: 'too deep' });
      const size = echo!.qIn.qsize();
      const viaPut = await echo!.qIn.put(deep).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(
        viaPut instanceof DOMException && viaPut.name === 'DataCloneError',
        `Queue.put of ${levels} levels: ${String(viaPut)}`,
      );
      assert.is(echo!.qIn.qsize(), size);
      await queueRoundTrip(echo!, [{ after: 'too deep' }]);
    }
  },
);

// Found by an outside check: a nested array 4,000-6,000 deep, put by a worker (whose stack is 4x the main
// thread's), crashed the consuming main thread with an uncaught RangeError thrown in the queue's port handler.
// Now such a value fails at send()/put() in the worker, in every thread (the wire refuses what some thread
// could not rebuild), and the main thread's waiting recv()/get() simply get the next message.
trips(
  'a value too deep for the main thread, sent by a worker, fails at send()/put() there; the waiting recv()/get() go on',
  async () => {
    const [mine, theirs] = Pipe<unknown>();
    const q = open(new Queue<unknown>());
    const p = startTask(tasks, 'sendDeep', [theirs, q, 5000]);
    assert.is(await mine.recv(), 'ready');
    // Both calls wait before anything is sent.
    const viaPipe = mine.recv({ timeout: 20_000 });
    const viaQueue = q.get({ timeout: 20_000 }).then(
      (v) => v,
      (e: Error) => e.name,
    );
    mine.send('go');
    const report = (await viaPipe) as { send: string; put: string };
    assert.match(report.send, /^DataCloneError/, `the worker's send(): ${JSON.stringify(report)}`);
    assert.match(report.put, /^DataCloneError/, `the worker's put(): ${JSON.stringify(report)}`);
    assert.equal(await viaQueue, { after: 'deep' }, 'the queue delivers the next item');
    mine.send('done');
    await p.join();
    assert.is(p.exitCode, 0, String(p.error));
  },
);

// Nothing thrown while a message is taken off a port may escape (an uncaught exception would kill the thread):
// an item this thread cannot rebuild rejects the recv()/get() that took it, and the others go on. A registered
// class whose deserialize() throws here is such an item.
trips(
  'an item that fails to rebuild in the receiver rejects the recv()/get() that took it; the channel goes on',
  async () => {
    const [mine, theirs] = Pipe<unknown>();
    const q = open(new Queue<unknown>());
    const p = startTask(tasks, 'sendFragile', [theirs, q]);
    // Both handled from the start: either may reject first (a get through the hand-off ring often does).
    const first = rejects(mine.recv({ timeout: 20_000 }), Error, 'recv() of a fragile value');
    const firstGet = rejects(q.get({ timeout: 20_000 }), Error, 'get() of a fragile value');
    assert.match((await first).message, /refuses to be rebuilt here/);
    assert.match((await firstGet).message, /refuses to be rebuilt here/);
    assert.equal(await mine.recv({ timeout: 20_000 }), { after: 'fragile' });
    assert.equal(await q.get({ timeout: 20_000 }), { after: 'fragile' });
    await p.join();
    assert.is(p.exitCode, 0, String(p.error));
  },
);

trips.run();

// ---------------------------------------------------------------------------------------------------------
const big = suite('reliability: large messages', 170_000);

// Runs in CI, and at 64 and 256 MiB in `npm run stress`. The bound is 3x the payload. A Pipe to a worker holds
// the sender's copy and the receiver's, about 2x. A plain Queue moves an item of 8 MiB or more from the hub to
// the get that claims it instead of keeping a copy, so it peaks as a Pipe does; until 15e138e the hub kept its
// copy and a Queue peaked at 2.9-3.0x, against the bound. Measured figures: FIGURES.md.
big('64 MiB messages each way through a Pipe and a Queue arrive intact, peak RSS under 3x the payload', async () => {
  const { result, exitMs } = await runScenario<BigResult[]>('bigMessages', { sizeMiB: 64 }, 160_000);
  for (const r of result) {
    figure(
      `64 MiB ${r.via} ${r.direction}${r.transfer ? ' (transferred)' : ''}`,
      r.peakRatio,
      'x payload peak RSS',
      `+${r.peakMiB.toFixed(0)} MiB peak, ${r.ms.toFixed(0)} ms, intact ${r.intact}`,
    );
  }
  for (const r of result) {
    assert.ok(r.intact, `${r.via} ${r.direction}: content differs`);
    assert.ok(
      r.peakRatio < 3,
      `${r.via} ${r.direction}${r.transfer ? ' transferred' : ''}: peak RSS ${r.peakRatio.toFixed(2)}x the payload`,
    );
  }
  assert.ok(exitMs < 5000, `the child took ${exitMs.toFixed(0)} ms to exit`);
});

big.run();
