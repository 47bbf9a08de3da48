// How long the blocking waits (lib/shared-wait.ts: blockUntil) should spin before they sleep in Atomics.wait.
// Two workers ping-pong through one shared cell, each waiting for its turn the way blockUntil does: up to
// `spin` loads of the cell, then Atomics.wait. Prints round trips per second for each spin count, twice, in
// alternating order (this machine is noisy), and the p50 of one round trip.
//   node bench/sync-spin.mjs
import { Worker, isMainThread, workerData, parentPort } from 'node:worker_threads';

const spins = [0, 16, 64, 256, 1024, 4096, 16384];
const seconds = 1;

/** @param {Int32Array} cells @param {number} want @param {number} spin */
function waitFor(cells, want, spin) {
  for (let i = 0; i < spin; i++) if (Atomics.load(cells, 0) === want) return;
  for (;;) {
    const value = Atomics.load(cells, 0);
    if (value === want) return;
    Atomics.wait(cells, 0, value);
  }
}

if (!isMainThread) {
  const { buffer, role, spin } = workerData;
  const cells = new Int32Array(buffer);
  const rounds = [];
  let n = 0;
  const end = performance.now() + seconds * 1000;
  for (;;) {
    if (role === 'ping') {
      const t = performance.now();
      if (t > end) {
        Atomics.store(cells, 0, -1); // stop
        Atomics.notify(cells, 0);
        break;
      }
      Atomics.store(cells, 0, 1);
      Atomics.notify(cells, 0);
      waitFor(cells, 2, spin);
      rounds.push(performance.now() - t);
      n++;
    } else {
      for (;;) {
        const v = Atomics.load(cells, 0);
        if (v === -1) break;
        if (v === 1) break;
        waitFor(cells, 1, spin);
        if (Atomics.load(cells, 0) === -1) break;
      }
      if (Atomics.load(cells, 0) === -1) break;
      Atomics.store(cells, 0, 2);
      Atomics.notify(cells, 0);
    }
  }
  rounds.sort((a, b) => a - b);
  parentPort?.postMessage({ n, p50: rounds[rounds.length >> 1] ?? 0 });
} else {
  /** @param {number} spin @returns {Promise<{ n: number, p50: number }>} */
  const run = (spin) =>
    new Promise((resolve, reject) => {
      const buffer = new SharedArrayBuffer(4);
      const ping = new Worker(new URL(import.meta.url), { workerData: { buffer, role: 'ping', spin } });
      const pong = new Worker(new URL(import.meta.url), { workerData: { buffer, role: 'pong', spin } });
      ping.once('message', resolve);
      ping.once('error', reject);
      pong.once('error', reject);
    });
  /** @type {Map<number, { n: number, p50: number }[]>} */
  const results = new Map(spins.map((s) => [s, []]));
  for (const order of [spins, [...spins].reverse()]) {
    for (const spin of order) results.get(spin)?.push(await run(spin));
  }
  console.log('spin    round trips/s (2 runs)     p50 µs');
  for (const [spin, runs] of results) {
    const rate = runs.map((r) => Math.round(r.n / seconds).toLocaleString('en')).join(' / ');
    const p50 = runs.map((r) => (r.p50 * 1000).toFixed(1)).join(' / ');
    console.log(`${String(spin).padEnd(7)} ${rate.padEnd(26)} ${p50}`);
  }
}
