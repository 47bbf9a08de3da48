// Faults, as functions of their size (trials): test/reliability/faults.test.ts runs ~20 trials each, the stress
// runner 200. Each trial kills or crashes a fresh worker at a moment chosen by a seeded PRNG (so a failing
// trial can be replayed from the seed printed with it) and then checks the whole history. Every worker they
// start is tracked for the harness's cleanup(), which the tests and the stress runner call after each step.
import { Empty, Pipe, Queue, type Connection } from '../../lib/index.ts';
import { intact, makeItem, waitAtLeast, type Item } from '../fixtures/reliability-tasks.ts';
import { deadline, startTask } from '../_support/harness.ts';
import { prng, tasks, yieldTurns, type Agent } from './agents.ts';
import {
  GET,
  GET_CORRUPT,
  HistoryLog,
  PUT,
  PUT_MAYBE,
  checkHistory,
  describeReport,
  type HistoryReport,
  type TicketClock,
} from './history.ts';

/** Gets from `q` until its size is 0 for good: polls with a short get timeout while items are still counted. */
async function drainWhileCounted(q: Queue<Item>, onItem: (item: Item) => void, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (q.qsize() > 0) {
    if (performance.now() > end) return false; // the queue stays "non-empty" with nothing to get: stuck
    try {
      onItem(await q.get({ timeout: 50 }));
    } catch (error) {
      if (!(error instanceof Empty)) throw error;
    }
  }
  return true;
}

export interface ProducerKillResult {
  trials: number;
  failures: string[];
  exitCodes: number[];
  acknowledged: number;
  delivered: number;
  /** Items put but not acknowledged, and not delivered (allowed). */
  notDelivered: number;
  ms: number;
}

/**
 * Producers terminated at a random moment. Per round, `concurrency` fresh producers put into one queue (maxsize
 * alternating 0 and 64) while the main thread consumes; each producer flushes and acknowledges through a Pipe at
 * random intervals, and is terminated once its acknowledgements pass a random threshold (plus a few turns).
 * Every acknowledged item must arrive exactly once; the delivered items of each producer must be a gapless
 * prefix of what it put, in order; the queue's size must settle to 0 (not stuck) and the queue stay usable.
 */
export async function producerKills(
  clock: TicketClock,
  options: { trials: number; concurrency?: number; seed: number },
): Promise<ProducerKillResult> {
  const concurrency = options.concurrency ?? 4;
  const rnd = prng(options.seed);
  const result: ProducerKillResult = {
    trials: 0,
    failures: [],
    exitCodes: [],
    acknowledged: 0,
    delivered: 0,
    notDelivered: 0,
    ms: 0,
  };
  const started = performance.now();
  const capacity = 1 << 15;
  for (let round = 0; result.trials < options.trials; round++) {
    const k = Math.min(concurrency, options.trials - result.trials);
    const maxsize = round % 2 === 0 ? 0 : 64;
    const roundSeed = Math.floor(rnd() * 2 ** 31);
    const r = prng(roundSeed);
    const q = new Queue<Item>({ maxsize });
    const mine = new HistoryLog(0);
    const producers = Array.from({ length: k }, (_, i) => {
      const cells = new SharedArrayBuffer(4 * (1 + capacity));
      const [acks, ackEnd] = Pipe<number>(false);
      const p = startTask(tasks, 'killableProducer', [q, ackEnd, i, cells, clock.buffer, Math.floor(r() * 2 ** 31)], {
        name: `producer-${round}-${i}`,
      });
      return {
        i,
        p,
        cells,
        acks,
        threshold: Math.floor(r() * 1500),
        extraTurns: Math.floor(r() * 6),
        lastAck: 0,
        terminated: false,
      };
    });
    let killed = false;
    let giveUp = false;
    const consuming = (async () => {
      // Consume until every producer is dead and the queue's count has settled to 0.
      for (;;) {
        if (killed && q.qsize() === 0) return true;
        if (giveUp) return false;
        try {
          const item = await q.get({ timeout: 50 });
          mine.get(item.p, item.s, clock.tick(), intact(item));
        } catch (error) {
          if (!(error instanceof Empty)) throw error;
        }
      }
    })();
    await Promise.all(
      producers.map(async (pr) => {
        for await (const ack of pr.acks) {
          pr.lastAck = Math.max(pr.lastAck, ack);
          if (pr.lastAck >= pr.threshold && !pr.terminated) {
            pr.terminated = true;
            await yieldTurns(pr.extraTurns);
            pr.p.terminate();
          }
        }
        // EOF: the producer is gone and every acknowledgement it sent has been read.
        await pr.p.join();
      }),
    );
    killed = true;
    const settled = await deadline(
      consuming,
      20_000,
      `round ${round} (seed ${roundSeed}): the queue size settling to 0`,
    ).catch((e: Error) => e.message);
    giveUp = true;
    await consuming; // it stops within one get timeout; the usability check below must not race with it
    if (settled !== true) {
      const detail = producers
        .map(
          (pr) =>
            `producer ${pr.i}: ${Atomics.load(new Int32Array(pr.cells), 0)} puts begun, ${pr.lastAck} acknowledged, delivered ${mine.n === 0 ? 0 : [...mine.events()].filter((e) => e.producer === pr.i).length}`,
        )
        .join('; ');
      result.failures.push(`${String(settled)}: qsize() stays ${q.qsize()} (${detail})`);
    }
    const logs = [mine];
    for (const pr of producers) {
      result.exitCodes.push(pr.p.exitCode ?? NaN);
      const cells = new Int32Array(pr.cells);
      const begun = Atomics.load(cells, 0);
      const log = new HistoryLog(100 + pr.i, begun + 1);
      for (let s = 0; s < begun; s++) log.record(s < pr.lastAck ? PUT : PUT_MAYBE, pr.i, s, cells[1 + s]!);
      logs.push(log);
      result.acknowledged += pr.lastAck;
    }
    const report = checkHistory(logs, { fifo: true, prefix: true });
    result.delivered += report.delivered;
    result.notDelivered += report.maybeLost;
    if (!report.ok)
      result.failures.push(`round ${round} (seed ${roundSeed}, maxsize ${maxsize}):\n${describeReport(report)}`);
    // Still usable: a full round of puts and gets (a stuck bounded queue would time out here).
    const fill = Math.max(1, maxsize);
    try {
      for (let s = 0; s < fill; s++) await q.put(makeItem(99, s), { timeout: 5000 });
      for (let s = 0; s < fill; s++) {
        const item = await q.get({ timeout: 5000 });
        if (item.p !== 99 || item.s !== s) throw new Error(`got ${item.p}:${item.s}, expected 99:${s}`);
      }
    } catch (error) {
      result.failures.push(
        `round ${round} (seed ${roundSeed}, maxsize ${maxsize}): the queue is not usable after the kills: ${(error as Error).name}: ${(error as Error).message}`,
      );
    }
    q.close();
    result.trials += k;
  }
  result.ms = performance.now() - started;
  return result;
}

export interface ConsumerKillResult {
  trials: number;
  failures: string[];
  /** Items a killed consumer had taken but not yet reported (allowed: at most one per kill). */
  takenUnreported: number;
  modes: Record<string, number>;
  ms: number;
}

/**
 * Consumers of a plain Queue terminated while they wait in get() or right after they got an item. Each trial:
 * the main thread puts M items into a queue (maxsize 0 or 8), a fresh consumer gets them and reports each
 * through a Pipe; the main thread terminates it either once it reports waiting on an empty queue (after putting
 * a few more items, which may be in flight to it) or once it reports the j-th item. Then the main thread puts an
 * END item and drains: every item must reach exactly one consumer, in put order, except at most the one item
 * the killed consumer had taken and not reported, which must be the next one after its last report.
 *
 * No item may reach the survivor late (after a later item). The hub queues items again, at the end of the
 * queue, only for a consumer that died holding them: a JoinableQueue's leases, or the deferred item (one that
 * moves ports, buffers or handles, or of 8 MiB or more) a plain Queue's consumer was fetching. Here the queue is
 * a plain Queue and its items are small plain objects, so nothing is ever queued again, and gets claim indexes
 * in put order: any late item is a reorder, and fails. Queueing again is tested where it happens: leases in
 * test/joinable-queue.test.ts, a fetch in the hub's tests (test/queue/).
 */
export async function consumerKills(
  clock: TicketClock,
  options: { trials: number; concurrency?: number; seed: number },
): Promise<ConsumerKillResult> {
  const concurrency = options.concurrency ?? 4;
  const rnd = prng(options.seed);
  const result: ConsumerKillResult = { trials: 0, failures: [], takenUnreported: 0, modes: {}, ms: 0 };
  const started = performance.now();
  const seeds = Array.from({ length: options.trials }, () => Math.floor(rnd() * 2 ** 31));
  for (let at = 0; at < seeds.length; at += concurrency) {
    await Promise.all(
      seeds.slice(at, at + concurrency).map(async (seed, j) => {
        const failure = await deadline(
          consumerKillTrial(clock, seed, at + j, result),
          90_000,
          `consumer-kill trial ${at + j} (seed ${seed})`,
        ).catch((error: Error) => error.message);
        if (failure !== undefined) result.failures.push(failure);
      }),
    );
  }
  result.trials = seeds.length;
  result.ms = performance.now() - started;
  return result;
}

async function consumerKillTrial(
  clock: TicketClock,
  seed: number,
  trial: number,
  result: ConsumerKillResult,
): Promise<string | undefined> {
  const r = prng(seed);
  const mode = r() < 0.5 ? 'waiting' : 'after-item';
  const maxsize = r() < 0.5 ? 0 : 8;
  const m = 1 + Math.floor(r() * 200);
  const extra = Math.floor(r() * 4);
  const turns = Math.floor(r() * 4);
  const killAfter = Math.floor(r() * m);
  result.modes[mode] = (result.modes[mode] ?? 0) + 1;
  const tag = `trial ${trial} (seed ${seed}, ${mode}, maxsize ${maxsize}, M=${m})`;
  const q = new Queue<Item>({ maxsize });
  const puts = new HistoryLog(0);
  const theirs = new HistoryLog(1);
  const mine = new HistoryLog(2);
  const [reports, reportEnd] = Pipe<any>(false);
  const c = startTask(tasks, 'killableConsumer', [q, reportEnd, clock.buffer], { name: `consumer-${trial}` });
  let next = 0;
  const putOne = async () => {
    puts.put(0, next, clock.tick());
    await q.put(makeItem(0, next++));
  };
  const producing = (async () => {
    while (next < m) await putOne();
    await q.flush();
  })();
  let lastReported = -1;
  let killing: Promise<void> | undefined;
  const kill = async () => {
    await yieldTurns(turns);
    c.terminate();
  };
  const reading = (async () => {
    for await (const report of reports as Connection<any>) {
      if (typeof report.waiting === 'number') {
        if (mode === 'waiting' && report.waiting === m && killing === undefined) {
          killing = (async () => {
            await producing;
            for (let i = 0; i < extra; i++) await putOne();
            await q.flush();
            await kill();
          })();
        }
      } else {
        theirs.record(report.ok ? GET : GET_CORRUPT, report.p, report.s, report.at);
        lastReported = Math.max(lastReported, report.s);
        if (mode === 'after-item' && report.s === killAfter && killing === undefined) killing = kill();
      }
    }
  })();
  const reached = await deadline(reading, 30_000, 'reading reports').then(
    () => true,
    () => false,
  );
  if (!reached) {
    c.terminate();
    return `${tag}: the consumer never reached the kill point in 30 s (last item reported: ${lastReported}, qsize() ${q.qsize()})`;
  }
  await c.join();
  if (c.exitCode !== -15)
    return `${tag}: the consumer exited with ${c.exitCode} before it was killed (${c.error?.message})`;
  // END: after everything else the main thread puts, so a single FIFO drain ends with it. The drain runs while
  // the rest is put (a bounded queue would block the puts otherwise).
  let end = -1;
  const ending = (async () => {
    await killing;
    await producing;
    end = next;
    await putOne();
    await q.flush();
  })();
  let gotEnd = false;
  const drained = await drainUntil(
    q,
    () => gotEnd,
    (item) => {
      mine.get(item.p, item.s, clock.tick(), intact(item));
      if (item.s === end) gotEnd = true;
    },
  );
  await ending;
  if (!drained)
    return `${tag}: the queue is stuck: qsize() ${q.qsize()} and no END after 20 s (the killed consumer's last report: ${lastReported})\n${describeReport(checkHistory([puts, theirs, mine]))}`;
  const report: HistoryReport = checkHistory([puts, theirs, mine], { fifo: true });
  // Any reorder fails, the survivor's included: see the doc comment of consumerKills.
  const others =
    report.duplicated.length +
    report.unexpected.length +
    report.reordered.length +
    report.early.length +
    report.invalid.length;
  let failure: string | undefined;
  if (others > 0 || report.lost.length > 1) failure = `${tag}:\n${describeReport(report)}`;
  else if (report.lost.length === 1) {
    result.takenUnreported++;
    const lost = report.lost[0]!;
    if (lost.seq !== lastReported + 1)
      failure = `${tag}: lost ${lost.producer}:${lost.seq}, but the killed consumer's last report was ${lastReported}: only the next item may be lost\n${describeReport(report)}`;
  }
  if (failure === undefined && q.qsize() !== 0) failure = `${tag}: qsize() is ${q.qsize()} after the drain`;
  if (failure === undefined) {
    // Usable for others: a put and a get by this thread.
    await q.put(makeItem(0, 1e6), { timeout: 5000 });
    const back = await q.get({ timeout: 5000 }).catch((e: Error) => e);
    if (!(typeof back === 'object' && (back as Item).s === 1e6))
      failure = `${tag}: the queue is not usable after the kill: ${String(back)}`;
  }
  q.close();
  return failure;
}

/** Gets until `done()` and the queue's count is 0; false if that takes over 20 s (stuck). */
async function drainUntil(q: Queue<Item>, done: () => boolean, onItem: (item: Item) => void): Promise<boolean> {
  const end = performance.now() + 20_000;
  while (!done() || q.qsize() > 0) {
    if (performance.now() > end) return false;
    try {
      onItem(await q.get({ timeout: 100 }));
    } catch (error) {
      if (!(error instanceof Empty)) throw error;
    }
  }
  return true;
}

export interface CrashResult {
  mode: 'throw' | 'exit' | 'oom';
  exitCode: number | null;
  error: { name: string; message: string; code?: unknown } | undefined;
  /** Items the crashed worker had put (unflushed) that were delivered. */
  delivered: number;
  deliveredInOrder: boolean;
  /** The queue's size settled to 0 and the queue took `maxsize` new items: not stuck. */
  usable: boolean;
  problem: string | undefined;
  /** Exchanges the two ping-pong pairs made after the crash (they must go on). */
  exchangesAfter: number[];
  ms: number;
}

/**
 * A worker fails after putting `maxsize` items (unflushed) into a bounded queue: it throws, calls
 * process.exit(3), or runs out of heap under resourceLimits. Meanwhile two pairs of agents ping-pong (one
 * pair over a Pipe, one over two queues). The failure must be reported (exitCode, error), the queue must not
 * stay full, and both pairs must keep exchanging messages.
 */
export async function crash(
  mode: 'throw' | 'exit' | 'oom',
  options: { maxsize?: number; counters: [SharedArrayBuffer, SharedArrayBuffer] },
): Promise<CrashResult> {
  const maxsize = options.maxsize ?? 8;
  const q = new Queue<Item>({ maxsize });
  const before = options.counters.map((b) => Atomics.load(new Int32Array(b), 0));
  const started = performance.now();
  const p = startTask(tasks, 'crashAfterPuts', [q, 7, maxsize, mode], {
    name: `crash-${mode}`,
    ...(mode === 'oom' ? { resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 } } : {}),
  });
  await p.join();
  const ms = performance.now() - started;
  const got: Item[] = [];
  let problem: string | undefined;
  const settled = await drainWhileCounted(q, (item) => got.push(item), 20_000);
  if (!settled) problem = `qsize() stays ${q.qsize()} with nothing to get`;
  const deliveredInOrder = got.every((item, i) => item.p === 7 && item.s === i && intact(item));
  let usable = settled;
  if (settled) {
    try {
      for (let s = 0; s < maxsize; s++) await q.put(makeItem(8, s), { timeout: 5000 });
      for (let s = 0; s < maxsize; s++) if ((await q.get({ timeout: 5000 })).s !== s) usable = false;
    } catch (error) {
      usable = false;
      problem = `not usable: ${(error as Error).name}: ${(error as Error).message}`;
    }
  }
  q.close();
  // Both ping-pong pairs go on: 100 more exchanges each.
  const exchangesAfter: number[] = [];
  for (let i = 0; i < 2; i++) {
    const cells = new Int32Array(options.counters[i]!);
    const ok = await waitAtLeast(cells, 0, Atomics.load(cells, 0) + 100, 20_000);
    exchangesAfter.push(ok ? Atomics.load(cells, 0) - before[i]! : -1);
  }
  const error =
    p.error === undefined
      ? undefined
      : { name: p.error.name, message: p.error.message, code: (p.error as { code?: unknown }).code };
  return {
    mode,
    exitCode: p.exitCode,
    error,
    delivered: got.length,
    deliveredInOrder,
    usable,
    problem,
    exchangesAfter,
    ms,
  };
}

/** Starts the two ping-pong pairs for `crash` (agents 0<->1 over a Pipe, 2<->3 over queues). */
export function startPingPongs(agents: Agent[]): {
  counters: [SharedArrayBuffer, SharedArrayBuffer];
  stop: () => Promise<number[]>;
} {
  const counters: [SharedArrayBuffer, SharedArrayBuffer] = [new SharedArrayBuffer(8), new SharedArrayBuffer(8)];
  const stop = new SharedArrayBuffer(8);
  const [a, b] = Pipe<number>();
  const q1 = new Queue<number>();
  const q2 = new Queue<number>();
  const jobs = [
    agents[0]!.call({ op: 'pingPong', conn: a, serve: true, counter: counters[0], stop }),
    agents[1]!.call({ op: 'pingPong', conn: b, serve: false, counter: counters[0], stop }),
    agents[2]!.call({ op: 'pingPong', qIn: q1, qOut: q2, serve: true, counter: counters[1], stop }),
    agents[3]!.call({ op: 'pingPong', qIn: q2, qOut: q1, serve: false, counter: counters[1], stop }),
  ];
  q1.close();
  q2.close();
  return {
    counters,
    stop: async () => {
      Atomics.store(new Int32Array(stop), 0, 1);
      const replies = await Promise.all(jobs);
      return replies.map((r) => r.exchanges as number);
    },
  };
}
