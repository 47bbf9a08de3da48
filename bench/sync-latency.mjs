// Round trips of the blocking receives against the async ones, between the main thread and one worker that
// echoes with recvSync (pipe) or getSync/putSync (queue). Prints the p50 of 20,000 round trips each; not part
// of `npm run bench` (`npm run build` first).
//   node bench/sync-latency.mjs
// biome-ignore lint/suspicious/noTsIgnore: dist/ exists only after `npm run build` (an expect-error would fail once it does).
// @ts-ignore -- dist/ exists only after `npm run build`.
import { Pipe, Process, Queue, isMainThread } from '../dist/lib/mpthreads.js';

const n = 20_000;

/** @param {any} conn */
export function echoPipe(conn) {
  for (;;) {
    let message;
    try {
      message = conn.recvSync();
    } catch {
      return; // EOF
    }
    conn.send(message);
  }
}

/** @param {any} from @param {any} to @param {number} count */
export function echoQueue(from, to, count) {
  for (let i = 0; i < count; i++) to.putSync(from.getSync());
}

/** @param {number[]} times */
const p50 = (times) => (times.sort((a, b) => a - b)[times.length >> 1] * 1000).toFixed(1);

/** @param {(i: number) => unknown} roundTrip */
async function measure(roundTrip) {
  /** @type {number[]} */
  const times = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await roundTrip(i);
    times.push(performance.now() - start);
  }
  return p50(times);
}

if (isMainThread) {
  for (const blocking of [true, false]) {
    const [a, b] = Pipe();
    const p = new Process({ target: echoPipe, module: import.meta.url, args: [b] });
    p.start();
    a.send(-1);
    await a.recv(); // the worker is up
    const result = await measure((i) => {
      a.send(i);
      return blocking ? a.recvSync() : a.recv();
    });
    a.close();
    await p.join();
    console.log(`pipe, main ${blocking ? 'recvSync' : 'await recv'}, worker recvSync: p50 ${result} µs`);
  }
  for (const blocking of [true, false]) {
    const out = new Queue();
    const back = new Queue();
    const p = new Process({ target: echoQueue, module: import.meta.url, args: [out, back, n + 1] });
    p.start();
    await out.put(-1);
    await back.get();
    const result = await measure(async (i) => {
      if (blocking) {
        out.putSync(i);
        return back.getSync();
      }
      await out.put(i);
      return back.get();
    });
    await p.join();
    out.close();
    back.close();
    console.log(
      `queue, main ${blocking ? 'putSync/getSync' : 'await put/get'}, worker getSync/putSync: p50 ${result} µs`,
    );
  }
}
