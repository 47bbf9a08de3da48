// How much memory a bounded pipeline costs: main -> a stage thread -> main, 200,000 small records, through two
// `Queue({ maxsize: 10 })` and a Process (mode `mp`), against the same pipeline on two raw MessageChannels and
// a bare Worker that keeps at most 10 items in flight (mode `raw`, credits, with callbacks; `raw-await`, the
// same with one `await` per message, as async code over ports would be written). A mode ending in `+thread`
// also starts one more Worker that sits idle: the floor of any design that, like mpthreads' queue hub, keeps a
// thread of its own so that a queue goes on delivering while the thread that made it is busy (SPEC). Prints
// the peak rise of the whole process's RSS (sampled every 5 ms) over its RSS before anything started, the rise
// once the threads are up and one item went round, and each heap at the end. One mode per process, so run them
// alternately:
//   npm run build && for i in 1 2; do for m in mp raw raw+thread raw-await+thread; do node bench/pipeline-rss.mjs $m; done; done
// With `--ts` (under tsx: `npx tsx bench/pipeline-rss.mjs mp --ts`), the stage is TypeScript
// (bench/tasks/pipeline-stage.ts): mpthreads compiles it in the parent; the raw Worker registers tsx itself.
// Without it, under tsx, the raw stage is this JavaScript file (its worker inherits tsx's flags, as Node does).
// `--src` (with `--ts`) takes the library from its TypeScript sources instead of the built package.
import { MessageChannel, Worker, isMainThread, workerData } from 'node:worker_threads';

// The built package (dist/ exists only after `npm run build`), or with `--src` (and `--ts`, under tsx) the
// TypeScript sources, as this repository's tests use them.
const fromSources = isMainThread && process.argv.includes('--src');
const library = fromSources ? '../lib/index.ts' : '../dist/lib/mpthreads.js';
const { Process, Queue } = await import(library);

/** @param {number} i */
const item = (i) => ({ i, text: 'payload '.repeat(12), n: i * 2 });
/** @param {string} who */
const heap = (who) => {
  const m = process.memoryUsage();
  const mib = (/** @type {number} */ b) => (b / 2 ** 20).toFixed(1);
  return `${who} heap ${mib(m.heapUsed)} of ${mib(m.heapTotal)} MiB, external ${mib(m.external)} MiB`;
};

/** The mp stage: every item from `input` to `output`. */
/** @param {any} input @param {any} output @param {number} n */
export async function stage(input, output, n) {
  for (let i = 0; i < n; i++) await output.put(await input.get());
  console.log(heap('stage'));
}

/**
 * The messages of `port`, one `await` at a time, as async code over a raw port would take them.
 * @param {import('node:worker_threads').MessagePort} port
 * @returns {() => Promise<any>}
 */
function receiver(port) {
  /** @type {unknown[]} */
  const buffered = [];
  /** @type {((m: unknown) => void) | undefined} */
  let waiting;
  port.on('message', (m) => {
    const resolve = waiting;
    waiting = undefined;
    if (resolve !== undefined) resolve(m);
    else buffered.push(m);
  });
  return () =>
    buffered.length > 0 ? Promise.resolve(buffered.shift()) : new Promise((resolve) => (waiting = resolve));
}

if (!isMainThread && workerData?.idle) {
  // The idle thread: alive, and doing nothing, until the pipeline ends (its port closes).
  workerData.idle.on('message', () => {});
} else if (!isMainThread && workerData?.raw) {
  const { input, output, awaits, n } = workerData;
  if (awaits) {
    const next = receiver(input);
    for (let i = 0; i < n; i++) output.postMessage(await next());
  } else input.on('message', (/** @type {unknown} */ m) => output.postMessage(m));
} else if (isMainThread) {
  const modeArg = process.argv[2] ?? '';
  const ts = process.argv.includes('--ts');
  if (fromSources && !ts) throw new TypeError('--src needs --ts: a JavaScript stage would load the built package');
  const stageModule = ts ? new URL('./tasks/pipeline-stage.ts', import.meta.url) : new URL(import.meta.url);
  /** A raw stage Worker: this file, or the TypeScript stage through a worker that registers tsx. */
  const rawStage = (/** @type {import('node:worker_threads').WorkerOptions} */ options) =>
    ts
      ? new Worker(new URL('./tasks/tsx-worker.mjs', import.meta.url), {
          ...options,
          workerData: { ...options.workerData, module: stageModule.href },
        })
      : new Worker(stageModule, options);
  const idleThread = modeArg.endsWith('+thread');
  const mode = idleThread ? modeArg.slice(0, -'+thread'.length) : modeArg;
  const n = Number(process.argv.slice(3).find((a) => !a.startsWith('--')) ?? 200_000);
  if (mode !== 'mp' && mode !== 'raw' && mode !== 'raw-await')
    throw new TypeError('usage: node bench/pipeline-rss.mjs mp|raw|raw-await[+thread] [items] [--ts [--src]]');
  const rss0 = process.memoryUsage().rss;
  const idle = new MessageChannel();
  if (idleThread) {
    const w = new Worker(new URL(import.meta.url), { workerData: { idle: idle.port2 }, transferList: [idle.port2] });
    await new Promise((resolve) => w.once('online', resolve));
    w.unref();
  }
  let peak = rss0;
  let started = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 5);
  const t0 = performance.now();
  if (mode === 'mp') {
    const a = new Queue({ maxsize: 10 });
    const b = new Queue({ maxsize: 10 });
    const p = new Process({ target: 'stage', module: stageModule, args: [a, b, n + 1] });
    p.start();
    await a.put(item(-1));
    await b.get();
    started = process.memoryUsage().rss;
    const consume = (async () => {
      for (let i = 0; i < n; i++)
        if (/** @type {{ i: number }} */ (await b.get()).i !== i) throw new Error('out of order');
    })();
    for (let i = 0; i < n; i++) await a.put(item(i));
    await consume;
    await p.join();
  } else if (mode === 'raw-await') {
    const into = new MessageChannel();
    const back = new MessageChannel();
    if (ts) throw new TypeError('raw-await has no --ts form');
    const w = rawStage({
      workerData: { raw: true, awaits: true, n: n + 1, input: into.port2, output: back.port1 },
      transferList: [into.port2, back.port1],
    });
    const next = receiver(back.port2);
    into.port1.postMessage(item(-1));
    await next();
    started = process.memoryUsage().rss;
    // 10 credits: a put awaits one, a get gives one back.
    let credits = 10;
    /** @type {(() => void) | undefined} */
    let freed;
    const consume = (async () => {
      for (let i = 0; i < n; i++) {
        if ((await next()).i !== i) throw new Error('out of order');
        credits++;
        const wake = freed;
        freed = undefined;
        wake?.();
      }
    })();
    for (let i = 0; i < n; i++) {
      if (credits === 0) await new Promise((resolve) => (freed = () => resolve(undefined)));
      credits--;
      into.port1.postMessage(item(i));
    }
    await consume;
    into.port1.close();
    back.port2.close();
    await w.terminate();
  } else {
    const into = new MessageChannel();
    const back = new MessageChannel();
    const w = rawStage({
      workerData: { raw: true, input: into.port2, output: back.port1 },
      transferList: [into.port2, back.port1],
    });
    await new Promise((resolve) => {
      back.port2.once('message', () => resolve(undefined));
      into.port1.postMessage(item(-1));
    });
    started = process.memoryUsage().rss;
    let credits = 10;
    let got = 0;
    let sent = 0;
    await new Promise((/** @type {(v?: unknown) => void} */ resolve) => {
      const pump = () => {
        for (; credits > 0 && sent < n; credits--) into.port1.postMessage(item(sent++));
      };
      back.port2.on('message', (/** @type {{ i: number }} */ x) => {
        if (x.i !== got++) throw new Error('out of order');
        credits++;
        if (got === n) resolve();
        else pump();
      });
      pump();
    });
    into.port1.close();
    back.port2.close();
    await w.terminate();
  }
  peak = Math.max(peak, process.memoryUsage().rss);
  clearInterval(sampler);
  idle.port1.close();
  console.log(heap('main'));
  const mib = (/** @type {number} */ b) => +(b / 2 ** 20).toFixed(1);
  const seconds = +((performance.now() - t0) / 1000).toFixed(2);
  console.log(
    JSON.stringify({
      mode: `${modeArg}${ts ? ' --ts' : ''}${fromSources ? ' --src' : ''}`,
      items: n,
      peakRiseMiB: mib(peak - rss0),
      riseOnceStartedMiB: mib(started - rss0),
      seconds,
    }),
  );
}
