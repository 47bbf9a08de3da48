// What waking another thread costs in memory, with nothing else going on: 200,000 round trips between the main
// thread and a worker, each side waking the other with Atomics.notify while it waits in Atomics.waitAsync
// (mode `atomics`, how a queue's get waits for the hand-off ring) or by a message on a MessagePort (mode
// `port`). Prints the peak rise of the process's RSS (sampled every 5 ms) and the main thread's young and old
// spaces at the end. One mode per process, so run both, alternately:
//   for i in 1 2; do node bench/wake-rss.mjs atomics; node bench/wake-rss.mjs port; done
import v8 from 'node:v8';
import { MessageChannel, Worker, isMainThread, workerData } from 'node:worker_threads';

/** @param {string} who */
const spaces = (who) => {
  /** @type {Record<string, string>} */
  const size = {};
  for (const s of v8.getHeapSpaceStatistics()) size[s.space_name] = (s.space_size / 2 ** 20).toFixed(1);
  return `${who}: new space ${size.new_space} MiB, old space ${size.old_space} MiB`;
};

/**
 * Takes turns on `cells[0]` with the other thread: waits until it holds `me`, then hands it to `other`.
 * @param {Int32Array} cells @param {number} me @param {number} other @param {number} n @param {boolean} first
 */
async function takeTurns(cells, me, other, n, first) {
  // A pending waitAsync alone does not keep a thread alive.
  const alive = setInterval(() => {}, 1000);
  for (let i = 0; i < n; i++) {
    if (!(first && i === 0)) {
      for (let v = Atomics.load(cells, 0); v !== me; v = Atomics.load(cells, 0)) {
        const wait = Atomics.waitAsync(cells, 0, v);
        if (wait.async) await wait.value;
      }
    }
    Atomics.store(cells, 0, other);
    Atomics.notify(cells, 0);
  }
  clearInterval(alive);
}

if (!isMainThread) {
  const { mode, n, cells, port } = workerData;
  if (mode === 'atomics') await takeTurns(cells, 2, 1, n, false);
  else {
    let i = 0;
    port.on('message', () => {
      port.postMessage(0);
      if (++i === n) port.close();
    });
  }
} else {
  const mode = process.argv[2];
  const n = Number(process.argv[3] ?? 200_000);
  if (mode !== 'atomics' && mode !== 'port') throw new TypeError('usage: node bench/wake-rss.mjs atomics|port [n]');
  const rss0 = process.memoryUsage().rss;
  let peak = rss0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 5);
  const t0 = performance.now();
  if (mode === 'atomics') {
    const cells = new Int32Array(new SharedArrayBuffer(4));
    Atomics.store(cells, 0, 1);
    const w = new Worker(new URL(import.meta.url), { workerData: { mode, n, cells } });
    const exited = new Promise((resolve) => w.once('exit', resolve));
    await takeTurns(cells, 1, 2, n, true);
    await exited;
  } else {
    const { port1, port2 } = new MessageChannel();
    const w = new Worker(new URL(import.meta.url), { workerData: { mode, n, port: port2 }, transferList: [port2] });
    let i = 0;
    await new Promise((resolve) => {
      port1.on('message', () => {
        if (++i === n) resolve(undefined);
        else port1.postMessage(0);
      });
      port1.postMessage(0);
    });
    port1.close();
    await w.terminate();
  }
  peak = Math.max(peak, process.memoryUsage().rss);
  clearInterval(sampler);
  console.log(spaces('main'));
  const seconds = +((performance.now() - t0) / 1000).toFixed(2);
  console.log(JSON.stringify({ mode, roundTrips: n, peakRiseMiB: +((peak - rss0) / 2 ** 20).toFixed(1), seconds }));
}
