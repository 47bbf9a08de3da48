// Python's "Using a pool of workers" example (docs.python.org, multiprocessing), ported.
import { currentProcess, isMainThread, Pool, TimeoutError } from '../lib/index.ts';

export function f(x: number): number {
  return x * x;
}

export function getpid(): number | undefined {
  return currentProcess().pid;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

if (isMainThread) {
  {
    // start 4 worker processes
    await using pool = new Pool({ module: import.meta.url, processes: 4 });

    // prints "[0, 1, 4, ..., 81]"
    console.log(
      await pool.map(
        f,
        Array.from({ length: 10 }, (_, i) => i),
      ),
    );

    // prints the same numbers in arbitrary order
    for await (const i of pool.imapUnordered(
      f,
      Array.from({ length: 10 }, (_, i) => i),
    ))
      console.log(i);

    // evaluates "f(20)" asynchronously
    let res = pool.applyAsync(f, [20]); // runs in *only* one process
    console.log(await res.get(1000)); // prints "400"

    // evaluates "getpid()" asynchronously
    const pid = pool.applyAsync(getpid, []); // runs in *only* one process
    console.log(await pid.get(1000)); // prints the pid (threadId) of that process

    // launching multiple evaluations asynchronously *may* use more processes
    const multipleResults = Array.from({ length: 4 }, () => pool.applyAsync(getpid, []));
    console.log(await Promise.all(multipleResults.map((r) => r.get(1000))));

    // makes a single worker sleep for 10 seconds
    const sleeping = pool.applyAsync(sleep, [10_000]);
    try {
      console.log(await sleeping.get(1000));
    } catch (error) {
      if (!(error instanceof TimeoutError)) throw error;
      console.log('We lacked patience and got a TimeoutError');
    }

    console.log('For the moment, the pool remains available for more work');
    res = pool.applyAsync(f, [3]);
    console.log(await res.get(1000));

    // Python's `with Pool()` terminates the pool on exit; `await using` closes it and waits for the work
    // left, so stop the sleeper as Python would:
    pool.terminate();
  }
  // leaving the block has stopped the pool
  console.log('Now the pool is closed and no longer available');
}
