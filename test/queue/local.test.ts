// The queue contract (test/queue/conformance.ts) on the local engine: the process's hub and shared memory.
import { JoinableQueue, Queue, SimpleQueue } from '../../lib/index.ts';
import { startTask } from '../_support/harness.ts';
import { queueConformance, type AnyJoinableQueue, type AnyQueue } from './conformance.ts';

const tasks = new URL('../fixtures/conformance-tasks.ts', import.meta.url);

queueConformance({
  name: 'local',
  // (Casts: TypeScript infers a generic method's T against T | Promise<T> and gets lost; the shapes match.)
  Queue: <T>(options?: { maxsize?: number }) => new Queue<T>(options) as AnyQueue<T>,
  JoinableQueue: <T>(options?: { maxsize?: number }) => new JoinableQueue<T>(options) as AnyJoinableQueue<T>,
  SimpleQueue: <T>() => new SimpleQueue<T>(),
  start: (target, args) => startTask(tasks, target, args),
});
