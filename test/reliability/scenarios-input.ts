// Bad input, as functions of their size: round trips of hostile values (property-based) and large messages.
// Large messages run in a child process (test/stress/child.ts, with --expose-gc) so that RSS is not mixed with
// the test runner's own.
import fc from 'fast-check';
import { Pipe, Queue, type Connection } from '../../lib/index.ts';
import { STOP, checksum, fillPattern } from '../fixtures/reliability-tasks.ts';
import { deadline, startTask } from '../_support/harness.ts';
import { tasks, type Agent } from './agents.ts';
import { MiB } from './figures.ts';
import { cloneDiff, mutate, preview } from './oracle.ts';

/** One end of an echo pipe and a relay queue pair, both served by `agent`. */
export interface Echo {
  conn: Connection<unknown>;
  qIn: Queue<unknown>;
  qOut: Queue<unknown>;
  next: number;
  stop(): Promise<void>;
}

export function startEcho(agent: Agent): Echo {
  const [conn, theirs] = Pipe<unknown>();
  const qIn = new Queue<unknown>();
  const qOut = new Queue<unknown>();
  const echoing = agent.call({ op: 'echo', conn: theirs });
  const relaying = agent.call({ op: 'relay', qIn, qOut });
  return {
    conn,
    qIn,
    qOut,
    next: 0,
    async stop() {
      conn.close();
      await qIn.put(STOP);
      await Promise.all([echoing, relaying]);
      qIn.close();
      qOut.close();
    },
  };
}

const kReplyMs = 15_000;

/**
 * Sends `value` through the echo pipe and back; throws with the first difference from structuredClone(value)
 * taken at send time. The value is mutated right after the send: the copy must not see it.
 */
export async function pipeRoundTrip(echo: Echo, value: unknown): Promise<void> {
  const expected = structuredClone(value);
  const n = echo.next++;
  echo.conn.send({ n, value });
  mutate(value);
  const back = await nextReply(
    () => echo.conn.recv({ timeout: kReplyMs }) as Promise<{ n: number; value: unknown }>,
    n,
    'pipe',
  );
  const diff = cloneDiff(back.value, expected);
  if (diff !== undefined) throw new Error(`pipe round trip differs at ${diff}`);
}

/** The same through the relay queues: main put -> worker get, put -> main get. */
export async function queueRoundTrip(echo: Echo, values: unknown[]): Promise<void> {
  const expected = values.map((v) => structuredClone(v));
  const first = echo.next;
  for (const value of values) {
    await echo.qIn.put({ n: echo.next++, value });
    mutate(value); // after put() resolved; the item may still sit in this thread's batch
  }
  for (let i = 0; i < values.length; i++) {
    const back = await nextReply(
      () => echo.qOut.get({ timeout: kReplyMs }) as Promise<{ n: number; value: unknown }>,
      first + i,
      'queue',
    );
    const diff = cloneDiff(back.value, expected[i]);
    if (diff !== undefined) throw new Error(`queue round trip of item ${i} differs at ${diff}`);
  }
}

/**
 * The reply numbered `n`. Replies numbered below `n` are left over from an earlier failed check (whose error was
 * already reported) and are skipped, so one failure does not cascade into every later check.
 */
async function nextReply(
  receive: () => Promise<{ n: number; value: unknown }>,
  n: number,
  via: string,
): Promise<{ n: number; value: unknown }> {
  for (;;) {
    const back = await receive();
    if (back.n === n) return back;
    if (back.n > n) throw new Error(`${via}: got reply ${back.n}, expected ${n} (lost or reordered)`);
  }
}

export interface PropertyResult {
  runs: number;
  ms: number;
  failure: string | undefined;
}

/** Runs a round-trip property; resolves with the counterexample (seed, path, value) instead of throwing. */
export async function roundTripProperty<T>(
  arbitrary: fc.Arbitrary<T>,
  check: (value: T) => Promise<void>,
  options: { numRuns: number; seed?: number },
): Promise<PropertyResult> {
  const started = performance.now();
  const details = await fc.check(
    fc.asyncProperty(arbitrary, async (v) => {
      await check(v);
    }),
    {
      numRuns: options.numRuns,
      ...(options.seed === undefined ? {} : { seed: options.seed }),
      endOnFailure: false,
      interruptAfterTimeLimit: 30_000, // shrinking a failure can take long: report what it has by then
    },
  );
  const ms = performance.now() - started;
  let failure: string | undefined;
  if (details.failed) {
    failure = `seed ${details.seed}, path ${details.counterexamplePath}: ${(details.errorInstance as Error)?.message ?? String(details.errorInstance)}\ncounterexample: ${preview(details.counterexample, 5)}`;
  } else if (details.interrupted) {
    failure = `interrupted after ${details.numRuns} runs`;
  }
  return { runs: details.numRuns, ms, failure };
}

// --- large messages -------------------------------------------------------------------------------------

export interface BigResult {
  via: 'pipe' | 'queue';
  direction: 'to-worker' | 'to-main';
  transfer: boolean;
  sizeMiB: number;
  intact: boolean;
  ms: number;
  /** Peak RSS above the baseline taken with the payload already allocated, in MiB and in payloads. */
  peakMiB: number;
  peakRatio: number;
  afterMiB: number;
}

const gc = (globalThis as { gc?: () => void }).gc;
const rss = () => process.memoryUsage().rss;

/** Samples RSS every millisecond (when the thread is free to) and at every mark(). */
function sampler() {
  let peak = rss();
  const base = peak;
  const timer = setInterval(() => {
    peak = Math.max(peak, rss());
  }, 1);
  return {
    mark() {
      peak = Math.max(peak, rss());
    },
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, rss());
      return { base, peak };
    },
  };
}

/**
 * Large messages, each way, through a Pipe and a Queue, copied (and transferred, for the figures). The payload
 * exists before the baseline is taken, so the peak counts what the transport adds: copies in flight and the
 * received copy. Each side drops its copy and collects garbage (gc exposed) between cases.
 */
export async function bigMessages(options: {
  sizeMiB: number;
  cases?: { via: 'pipe' | 'queue'; direction: 'to-worker' | 'to-main'; transfer: boolean }[];
}): Promise<BigResult[]> {
  const size = options.sizeMiB * MiB;
  const cases = options.cases ?? [
    { via: 'pipe', direction: 'to-worker', transfer: false },
    { via: 'pipe', direction: 'to-main', transfer: false },
    { via: 'queue', direction: 'to-worker', transfer: false },
    { via: 'queue', direction: 'to-main', transfer: false },
    { via: 'pipe', direction: 'to-worker', transfer: true },
    { via: 'queue', direction: 'to-worker', transfer: true },
  ];
  const [conn, theirs] = Pipe<any>();
  const toParent = new Queue<Uint8Array>();
  const fromParent = new Queue<Uint8Array>();
  const peer = startTask(tasks, 'bigPeer', [theirs, toParent, fromParent], { name: 'big-peer', track: false }); // joined below;
  const results: BigResult[] = [];
  try {
    conn.send({ gc: true });
    await conn.recv();
    for (const c of cases) {
      gc?.();
      let intact: boolean;
      let s: ReturnType<typeof sampler>;
      const started = performance.now();
      if (c.direction === 'to-worker') {
        let payload: Uint8Array | undefined = new Uint8Array(size);
        fillPattern(payload, 0xb16);
        const sum = checksum(payload);
        gc?.();
        s = sampler();
        conn.send({ expect: c.via });
        if (c.via === 'pipe')
          conn.send(payload, c.transfer ? { transfer: [payload.buffer as ArrayBuffer] } : undefined);
        else await fromParent.put(payload, c.transfer ? { transfer: [payload.buffer as ArrayBuffer] } : undefined);
        s.mark();
        payload = undefined;
        const reply = (await deadline(conn.recv(), 120_000, 'the peer to receive the payload')) as {
          length: number;
          sum: number;
        };
        intact = reply.length === size && reply.sum === sum;
      } else {
        conn.send({ make: size, seed: 0xb17, via: c.via, transfer: c.transfer });
        const ready = (await conn.recv()) as { sum: number };
        gc?.();
        s = sampler();
        conn.send('go');
        let payload: Uint8Array | undefined =
          c.via === 'pipe'
            ? ((await deadline(conn.recv(), 120_000, 'the payload')) as Uint8Array)
            : await fromQueue(toParent);
        s.mark();
        intact = payload.byteLength === size && checksum(payload) === ready.sum;
        payload = undefined;
        await conn.recv(); // { sent: true }: the peer dropped its copy
      }
      const ms = performance.now() - started;
      const { base, peak } = s.stop();
      gc?.();
      results.push({
        ...c,
        sizeMiB: options.sizeMiB,
        intact,
        ms,
        peakMiB: (peak - base) / MiB,
        peakRatio: (peak - base) / size,
        afterMiB: (rss() - base) / MiB,
      });
    }
  } finally {
    conn.close();
    await peer.join(30_000);
    if (peer.isAlive()) peer.terminate();
    toParent.close();
    fromParent.close();
  }
  return results;
}

function fromQueue(q: Queue<Uint8Array>): Promise<Uint8Array> {
  return deadline(q.get(), 120_000, 'the payload through the queue');
}
