// The stage of bench/pipeline-rss.mjs's TypeScript modes (`--ts`, run under tsx), written as a TypeScript
// program would: `stage` is the Process target (the parent compiles this module, its worker loads no loader),
// and the raw stage runs when a bare Worker loads this file through bench/tasks/tsx-worker.mjs (tsx registered
// in the worker, the way a TypeScript worker runs under tsx).
import { isMainThread, type MessagePort, workerData } from 'node:worker_threads';
import type { Queue } from '../../lib/index.ts';

interface Item {
  i: number;
  text: string;
  n: number;
}

export async function stage(input: Queue<Item>, output: Queue<Item>, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await output.put(await input.get());
}

if (!isMainThread && workerData?.raw) {
  const { input, output } = workerData as { input: MessagePort; output: MessagePort };
  input.on('message', (m: Item) => output.postMessage(m));
}
