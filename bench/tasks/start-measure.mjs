// The start case's measuring loop, shared by bench/start-js.mjs (plain node, built package) and
// bench/start-ts.ts (tsx, TypeScript sources): the time from `new Worker()` / `new Process().start()` to the
// first message received in the parent, in µs. The first start of each kind in a fresh program is reported
// on its own (`firstUs`: cold caches, and no spare worker yet); the timed repetitions alternate the two kinds.
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';

/**
 * The parts of the library this loop uses (structural, so the built package and the sources both fit).
 * @typedef {{ start(): void, join(): Promise<void>, exitCode: number | null, error?: Error }} StartedProcess
 */

/**
 * @param {{
 *   Process: new (options: { target: string, module: URL, args: unknown[] }) => StartedProcess,
 *   Pipe: () => [{ recv(options?: { timeout?: number }): Promise<unknown>, close(): void }, unknown],
 *   taskUrl: URL,
 *   reps: number,
 *   labels: [raw: string, process: string],
 * }} options
 */
export async function measureStarts({ Process, Pipe, taskUrl, reps, labels }) {
  const rawUrl = new URL('./raw-start.mjs', import.meta.url);

  async function raw() {
    const t0 = performance.now();
    const worker = new Worker(rawUrl);
    const exited = once(worker, 'exit');
    const [message] = await once(worker, 'message');
    const t1 = performance.now();
    const [code] = await exited;
    if (message !== 'up' || code !== 0) throw new Error(`raw start: got ${message}, exit code ${code}`);
    return (t1 - t0) * 1000;
  }

  async function proc() {
    const [mine, theirs] = Pipe();
    const t0 = performance.now();
    const p = new Process({ target: 'startTask', module: taskUrl, args: [theirs] });
    p.start();
    const message = await mine.recv({ timeout: 60_000 });
    const t1 = performance.now();
    await p.join();
    mine.close();
    if (typeof message !== 'string' || !message.startsWith('up') || p.exitCode !== 0) {
      throw new Error(`process start: got ${message}, exit code ${p.exitCode}${p.error ? `, ${p.error.message}` : ''}`);
    }
    return (t1 - t0) * 1000;
  }

  const firstRaw = await raw();
  const firstProc = await proc();
  /** @type {number[]} */
  const rawUs = [];
  /** @type {number[]} */
  const procUs = [];
  for (let r = 0; r < reps; r++) {
    rawUs.push(await raw());
    procUs.push(await proc());
  }
  return {
    rows: [
      { impl: labels[0], us: rawUs, firstUs: firstRaw },
      { impl: labels[1], us: procUs, firstUs: firstProc },
    ],
  };
}

/** The --reps N argument of a start child. */
export function repsArg() {
  const i = process.argv.indexOf('--reps');
  const reps = i === -1 ? 10 : Number(process.argv[i + 1]);
  if (!Number.isInteger(reps) || reps < 1)
    throw new RangeError(`--reps must be a positive integer, got ${process.argv[i + 1]}`);
  return reps;
}
