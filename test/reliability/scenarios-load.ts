// Contract under load, as functions of their size: test/reliability/load.test.ts runs them at CI sizes and
// test/stress/index.ts at stress sizes. Each returns what it measured and a history report; callers assert.
import { ClosedError, Empty, Queue } from '../../lib/index.ts';
import { STOP, intact, type Item, type Stop } from '../fixtures/reliability-tasks.ts';
import type { Agent } from './agents.ts';
import { deadline } from '../_support/harness.ts';
import { HistoryLog, checkHistory, type HistoryReport, type HistoryWire, type TicketClock } from './history.ts';

/** How long a consumer waits for the next item before it declares the rest lost (a stall, not a pace). */
const kStallMs = 20_000;

export interface LoadResult {
  n: number;
  maxsize: number;
  ms: number;
  perSecond: number;
  report: HistoryReport;
  stalled: boolean;
  leftover: number;
}

/** `n` items from `producers` agents to the main thread, through a Queue of `maxsize`. */
export async function fifoLoad(
  agents: Agent[],
  clock: TicketClock,
  options: { n: number; maxsize: number; producers?: number; pad?: number },
): Promise<LoadResult> {
  const producers = options.producers ?? 4;
  const per = Math.ceil(options.n / producers);
  const n = per * producers;
  const q = new Queue<Item>({ maxsize: options.maxsize });
  const mine = new HistoryLog(0, n + 1);
  const started = performance.now();
  const produced = agents.slice(0, producers).map((a, i) =>
    a.call({
      op: 'produce',
      q,
      producer: i,
      n: per,
      who: a.index,
      ...(options.pad === undefined ? {} : { pad: options.pad }),
    }),
  );
  let stalled = false;
  for (let k = 0; k < n; k++) {
    let item: Item;
    try {
      item = await q.get({ timeout: kStallMs });
    } catch (error) {
      if (!(error instanceof Empty)) throw error;
      stalled = true;
      break;
    }
    mine.get(item.p, item.s, clock.tick(), intact(item, options.pad));
  }
  const ms = performance.now() - started;
  // After a stall, the producers' own logs still say what they put (unless they are stuck too).
  const replies = stalled
    ? await deadline(Promise.all(produced), 30_000, 'the producers').catch(() => [])
    : await Promise.all(produced);
  // Nothing more may come: a further item would be a duplicate or an unexpected one.
  let leftover = 0;
  for (;;) {
    try {
      const extra = q.getNowait();
      mine.get(extra.p, extra.s, clock.tick(), intact(extra, options.pad));
      leftover++;
    } catch {
      break;
    }
  }
  q.close();
  const logs = [mine, ...replies.map((r) => HistoryLog.fromWire(r.log as HistoryWire))];
  const report = checkHistory(logs, { fifo: true });
  return { n, maxsize: options.maxsize, ms, perSecond: (n / ms) * 1000, report, stalled, leftover };
}

export interface MpmcResult {
  n: number;
  ms: number;
  perSecond: number;
  report: HistoryReport;
  shares: number[];
  drained: number;
}

/** `n` items from `producers` agents to `consumers` agents through one Queue (unbounded unless `maxsize`). */
export async function mpmc(
  agents: Agent[],
  clock: TicketClock,
  options: { n: number; producers?: number; consumers?: number; work?: number; maxsize?: number; preload?: boolean },
): Promise<MpmcResult> {
  const producers = options.producers ?? 4;
  const consumers = options.consumers ?? 4;
  if (agents.length < producers + consumers)
    throw new Error(`mpmc needs ${producers + consumers} agents, got ${agents.length}`);
  const per = Math.ceil(options.n / producers);
  const n = per * producers;
  const q = new Queue<Item | Stop>({ maxsize: options.maxsize ?? 0 });
  // The hub starts lazily (it can take a while on a busy machine): without this, producers' batches queue up in their ports while it
  // starts, and the STOPs from this thread can reach the consumers before any item (FIFO is per producer), so
  // the shares say nothing. Warm it with a round trip first.
  await q.put(STOP);
  await q.get();
  const consumerAgents = agents.slice(producers, producers + consumers);
  const started = performance.now();
  const consume = () =>
    consumerAgents.map((a) =>
      a.call({
        op: 'consume',
        q,
        who: a.index,
        untilStop: true,
        ...(options.work === undefined ? {} : { work: options.work }),
      }),
    );
  // preload: every item is in the queue before the consumers start (they then arrive one after the other while
  // the first already has a large window of items), the shape that broke per-consumer order under the leases
  // and recalls a plain Queue had before a96f101.
  let consumed = options.preload === true ? [] : consume();
  const produced = agents
    .slice(0, producers)
    .map((a, i) => a.call({ op: 'produce', q, producer: i, n: per, who: a.index }));
  const putLogs = await Promise.all(produced);
  if (options.preload === true) consumed = consume();
  // Every producer has flushed: one STOP per consumer. A STOP may overtake items still in another producer's
  // port; whatever the consumers leave is drained below and still counts.
  for (let i = 0; i < consumers; i++) await q.put(STOP);
  const getLogs = await Promise.all(consumed);
  const ms = performance.now() - started;
  const mine = new HistoryLog(0);
  let drained = 0;
  while (q.qsize() > 0) {
    const item = await q.get({ timeout: kStallMs }).catch((error) => {
      if (error instanceof Empty) return undefined;
      throw error;
    });
    if (item === undefined) break;
    if ((item as Stop).stop === true) continue;
    const it = item as Item;
    mine.get(it.p, it.s, clock.tick(), intact(it));
    drained++;
  }
  q.close();
  const logs = [
    mine,
    ...putLogs.map((r) => HistoryLog.fromWire(r.log as HistoryWire)),
    ...getLogs.map((r) => HistoryLog.fromWire(r.log as HistoryWire)),
  ];
  const report = checkHistory(logs, { fifo: true });
  const shares = consumerAgents.map((a) => (report.perConsumer.get(a.index) ?? 0) / n);
  return { n, ms, perSecond: (n / ms) * 1000, report, shares, drained };
}

export interface WakeResult {
  kind: 'get' | 'put';
  rounds: number;
  completed: number;
  failure: string | undefined;
  ms: number;
  latency: { n: number; p50: number; p99: number; max: number } | undefined;
}

/**
 * Lost wake-ups. kind 'get': agent A calls get() on an empty queue, raises a flag, and agent B puts one item
 * only after seeing the flag (sometimes at once, sometimes a few turns later); A's get must wake. kind 'put':
 * the queue has maxsize 1 and is full; A calls put() (it blocks), raises the flag, B gets one item; A's put
 * must wake. A wait longer than `timeout` is a lost wake-up.
 */
export async function wakeups(
  a: Agent,
  b: Agent,
  options: { kind: 'get' | 'put'; rounds: number; timeout: number; seed: number },
): Promise<WakeResult> {
  const flags = new SharedArrayBuffer(8);
  const { rounds, timeout, seed } = options;
  const started = performance.now();
  let failure: string | undefined;
  let waiter: Record<string, unknown>;
  let other: Record<string, unknown>;
  if (options.kind === 'get') {
    const q = new Queue<number>();
    [waiter, other] = await Promise.all([
      a.call({ op: 'wakeGet', q, flags, rounds, timeout }),
      b.call({ op: 'wakeFeed', q, flags, rounds, timeout, seed }),
    ]);
    if (q.qsize() !== 0) failure = `${q.qsize()} items left in the queue`;
    q.close();
  } else {
    const q = new Queue<number>({ maxsize: 1 });
    await q.put(0);
    await q.flush();
    [waiter, other] = await Promise.all([
      a.call({ op: 'wakePut', q, flags, rounds, timeout }),
      b.call({ op: 'wakeDrain', q, flags, rounds, timeout, seed }),
    ]);
    if (failure === undefined && waiter.lostAt === undefined && other.stuckAt === undefined) {
      const last = await q.get({ timeout }).catch((e: Error) => e.name);
      if (last !== rounds) failure = `the last item was ${String(last)}, expected ${rounds}`;
    }
    q.close();
  }
  const ms = performance.now() - started;
  if (waiter.lostAt !== undefined)
    failure = `lost wake-up: the blocked ${options.kind} of round ${String(waiter.lostAt)} did not wake within ${timeout} ms`;
  else if (waiter.wrongAt !== undefined) failure = `round ${String(waiter.wrongAt)} got ${String(waiter.value)}`;
  else if (other.stuckAt !== undefined) failure = `the waiter never raised round ${String(other.stuckAt)}`;
  else if (other.emptyAt !== undefined)
    failure = `the drainer found the full queue empty at round ${String(other.emptyAt)}`;
  else if (other.wrongAt !== undefined)
    failure = `the drainer got ${String(other.value)} at round ${String(other.wrongAt)}`;
  const completed =
    typeof waiter.rounds === 'number' ? waiter.rounds : Math.max(0, Number(waiter.lostAt ?? waiter.wrongAt ?? 1) - 1);
  return { kind: options.kind, rounds, completed, failure, ms, latency: waiter.latencies as WakeResult['latency'] };
}

export interface CloseWakeResult {
  waiters: number;
  /** From close() until every blocked get and put of that handle had rejected. */
  ms: number;
  allClosedError: boolean;
  errors: string[];
  /** Gets blocked in another thread's handle were not disturbed, and were served by later puts. */
  othersServed: boolean;
  othersResult: unknown;
}

/**
 * close() wakes every blocked caller of that handle with ClosedError: `waiters` blocked gets on an empty queue
 * and `waiters` blocked puts on a full bounded queue, all on the main thread's handles. Meanwhile an agent's
 * own handle of a queue has gets blocked; the main thread's close() must leave them alone, and a put from
 * another agent serves them.
 */
export async function closeWakes(agents: Agent[], options: { waiters: number }): Promise<CloseWakeResult> {
  const k = options.waiters;
  const empty = new Queue<number>();
  const full = new Queue<number>({ maxsize: 1 });
  await full.put(-1);
  const shared = new Queue<number>();
  const { token } = await agents[0]!.call({ op: 'blockGets', q: shared, k: 4 });
  // A second agent gets its handle now (a closed handle cannot be sent) and feeds only once flags are raised.
  const flags = new SharedArrayBuffer(8);
  const feeding = agents[1]!.call({ op: 'wakeFeed', q: shared, flags, rounds: 4, timeout: 30_000, seed: 1 });
  const gets = Array.from({ length: k }, () => empty.get());
  const puts = Array.from({ length: k }, (_, i) => full.put(i));
  const outcomes = Promise.allSettled([...gets, ...puts]);
  const started = performance.now();
  empty.close();
  full.close();
  shared.close();
  const settled = await outcomes;
  const ms = performance.now() - started;
  const errors = settled.map((s) =>
    s.status === 'rejected' ? `${(s.reason as Error)?.name}` : `resolved ${String(s.value)}`,
  );
  const allClosedError = settled.every((s) => s.status === 'rejected' && s.reason instanceof ClosedError);
  // The agent's gets still wait on its own handle; now the second agent puts 1..4 into its handle.
  Atomics.store(new Int32Array(flags), 0, 4);
  Atomics.notify(new Int32Array(flags), 0);
  const [result] = await Promise.all([agents[0]!.call({ op: 'collect', token: token as number }), feeding]);
  return {
    waiters: k,
    ms,
    allClosedError,
    errors: [...new Set(errors)],
    othersServed: JSON.stringify(result.result) === JSON.stringify([1, 2, 3, 4]),
    othersResult: result.result,
  };
}

/** Fairness figure helper: shares as percentages. */
export function percent(shares: number[]): string {
  return shares.map((s) => `${(s * 100).toFixed(1)}%`).join(' / ');
}
