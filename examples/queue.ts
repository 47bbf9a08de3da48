// Two workers square numbers from a JoinableQueue and put the results on a Queue (the README's queue example).
import { JoinableQueue, Process, Queue, isMainThread } from '../lib/index.ts';

export async function worker(tasks: JoinableQueue<number | null>, results: Queue<number>) {
  for (let n = await tasks.get(); n !== null; n = await tasks.get()) {
    await results.put(n * n);
    tasks.taskDone();
  }
  tasks.taskDone();
}

if (isMainThread) {
  const tasks = new JoinableQueue<number | null>();
  const results = new Queue<number>();
  const workers = [1, 2].map(() => new Process({ target: worker, module: import.meta.url, args: [tasks, results] }));
  for (const w of workers) w.start();
  for (let i = 0; i < 1000; i++) await tasks.put(i);
  for (const _ of workers) await tasks.put(null);
  await tasks.join();
  let sum = 0;
  for (let i = 0; i < 1000; i++) sum += await results.get();
  console.log(`sum of squares 0..999 = ${sum}`);
}
