// The Pool cases' task functions (bench/cases/pool.ts), shared by every implementation so that each one runs
// exactly the same code: mpthreads' Pool uses this file as its module (tasks by name), piscina and tinypool
// as their filename (with `{ name }`), workerpool through tasks/workerpool-task.mjs, and the single-thread
// row calls `cpu` in the main thread.
//
//   node bench/tasks/pool-work.mjs    prints how long one `cpu` task takes here (median of 200, after 200)

/** @param {number} x */
export function addOne(x) {
  return x + 1;
}

/**
 * Iterations of `cpu`'s loop: calibrated once, on the 2-core AMD EPYC VM the suite runs on (Node 20), so that
 * one task takes about 1 ms. A constant (not measured at each run) so that runs compare with one another; the
 * single/cpu row reports the time per task of each run in its note.
 */
export const CPU_ITERATIONS = 400_000;

/**
 * About 1 ms of integer arithmetic: a xorshift32 generator seeded from `i`, stepped CPU_ITERATIONS times.
 * Deterministic (the result depends on `i` only), allocation-free, and not foldable by the compiler.
 * @param {number} i
 */
export function cpu(i) {
  let x = (i * 2654435761 + 1) | 0 || 1;
  let acc = 0;
  for (let k = 0; k < CPU_ITERATIONS; k++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    acc = (acc + (x & 1023)) | 0;
  }
  return acc;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (let i = 0; i < 200; i++) cpu(i);
  const times = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    cpu(i);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  process.stdout.write(`cpu(): ${times[100].toFixed(3)} ms median, ${CPU_ITERATIONS} iterations\n`);
}
