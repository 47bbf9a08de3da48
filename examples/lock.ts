// Python's "Synchronization between processes" example (multiprocessing docs), ported: without the lock the
// ten greetings could interleave; with it each is printed whole.
import { Lock, Process, isMainThread } from '../lib/index.ts';

export function f(lock: Lock, i: number) {
  lock.acquireSync();
  try {
    console.log('hello world', i);
  } finally {
    lock.release();
  }
}

if (isMainThread) {
  const lock = new Lock();
  const processes = Array.from(
    { length: 10 },
    (_, num) => new Process({ target: f, module: import.meta.url, args: [lock, num] }),
  );
  for (const p of processes) p.start();
  for (const p of processes) await p.join();
}
