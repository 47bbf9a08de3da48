// The Pool's start case under plain node with the built package (run by bench/cases/start.ts after the build):
//   raw-2  two `new Worker(tasks/raw-start.mjs)` made together, to the first message of each (both arrived)
//   pool   `new Pool({ module: tasks/pool-work.mjs, processes: 2 })` to the result of its first
//          `await pool.apply(addOne, [1])`; then close() and join(), untimed
// The first start of each kind in this fresh program is reported on its own (cold); the timed repetitions
// alternate the two kinds, each waiting for the other's threads to exit. Prints one JSON document on stdout.
//   node bench/start-pool.mjs [--reps N]
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
// biome-ignore lint/suspicious/noTsIgnore: dist/ exists only after `npm run build` (an expect-error would fail once it does).
// @ts-ignore -- dist/ exists only after `npm run build`.
import { Pool } from '../dist/lib/mpthreads.js';
import { addOne } from './tasks/pool-work.mjs';
import { repsArg } from './tasks/start-measure.mjs';

const rawUrl = new URL('./tasks/raw-start.mjs', import.meta.url);
const workUrl = new URL('./tasks/pool-work.mjs', import.meta.url);

async function raw2() {
  const t0 = performance.now();
  const workers = [new Worker(rawUrl), new Worker(rawUrl)];
  const exited = workers.map((w) => once(w, 'exit'));
  const messages = await Promise.all(workers.map(async (w) => (await once(w, 'message'))[0]));
  const t1 = performance.now();
  const codes = (await Promise.all(exited)).map(([code]) => code);
  if (messages.some((m) => m !== 'up') || codes.some((c) => c !== 0))
    throw new Error(`raw-2 start: got ${messages.join(', ')}, exit codes ${codes.join(', ')}`);
  return (t1 - t0) * 1000;
}

async function pool() {
  const t0 = performance.now();
  const p = new Pool({ module: workUrl, processes: 2 });
  const y = await p.apply(addOne, [1]);
  const t1 = performance.now();
  p.close();
  await p.join();
  if (y !== 2) throw new Error(`pool start: pool.apply(addOne, [1]) returned ${y}`);
  return (t1 - t0) * 1000;
}

const reps = repsArg();
const firstRaw = await raw2();
const firstPool = await pool();
/** @type {number[]} */
const rawUs = [];
/** @type {number[]} */
const poolUs = [];
for (let r = 0; r < reps; r++) {
  rawUs.push(await raw2());
  poolUs.push(await pool());
}
const rows = [
  { impl: 'raw-2', us: rawUs, firstUs: firstRaw },
  { impl: 'pool', us: poolUs, firstUs: firstPool },
];
process.stdout.write(`${JSON.stringify({ node: process.version, rows })}\n`);
