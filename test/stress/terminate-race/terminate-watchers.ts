// Run by probe.ts: terminates `n` threads whose get() waits on a queue (an Atomics.waitAsync pending on its
// cells), `parallel` at a time. Prints "ok" at the end; a crash ends the process with SIGSEGV first.
import { isMainThread } from 'node:worker_threads';
import { Pipe, Process, Queue } from '../../../lib/index.ts';

const tasks = new URL('../../fixtures/queue-tasks.ts', import.meta.url);

if (isMainThread) {
  const n = Number(process.argv[2] ?? 600);
  const parallel = Number(process.argv[3] ?? 1);
  const q = new Queue<unknown>();
  const one = async () => {
    const [conn, child] = Pipe<unknown>();
    const p = new Process({ target: 'getOne', module: tasks, args: [q, child] });
    p.start();
    await conn.recv(); // 'waiting': its get is about to wait
    await p.terminate();
    conn.close();
  };
  for (let i = 0; i < n; i += parallel) await Promise.all(Array.from({ length: parallel }, one));
  q.close();
  console.log('ok');
}
