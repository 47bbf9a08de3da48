// JoinableQueue: a Queue whose consumers mark items done, so a producer can wait for all work to finish.
// The unfinished count lives in the queue's shared counters (kUnfinished): put() adds one in the producer's
// thread, taskDone() subtracts one in any thread, join() waits in any thread for it to reach 0. The hub
// subtracts items a dead producer counted but never sent.
import { ProcessError } from './errors.ts';
import { registerHandle } from './handles.ts';
import { Queue, reviveQueue } from './queue.ts';
import { kUnfinished } from './queue-protocol.ts';
import { waitForCell } from './shared-wait.ts';

/**
 * A Queue that counts unfinished tasks: every `put` adds one, every `taskDone()` removes one, and `join()`
 * resolves when the count is back to 0, whichever threads did the puts and the taskDone calls.
 *
 * @example
 * const q = new JoinableQueue<string>();
 * await q.put('work');
 * const item = await q.get(); // ... do the work ...
 * q.taskDone();
 * await q.join(); // resolves: nothing unfinished
 */
export class JoinableQueue<T = unknown> extends Queue<T> {
  static wireKind = 'JoinableQueue';

  /** Marks one item as done; throws `ProcessError` (ERR_TASK_DONE_TOO_MANY) if none is unfinished. */
  taskDone(): void {
    this.checkOpen();
    const counters = this.sharedCounters;
    for (;;) {
      const unfinished = Atomics.load(counters, kUnfinished);
      if (unfinished <= 0) throw new ProcessError('taskDone() called too many times', 'ERR_TASK_DONE_TOO_MANY');
      if (Atomics.compareExchange(counters, kUnfinished, unfinished, unfinished - 1) === unfinished) {
        if (unfinished === 1) Atomics.notify(counters, kUnfinished);
        return;
      }
    }
  }

  /** Resolves when every item put, by any holder, has been marked done by any holder. */
  async join(): Promise<void> {
    this.checkOpen();
    this.holdOpen(1);
    try {
      await waitForCell(this.sharedCounters, kUnfinished, (unfinished) => unfinished <= 0, Infinity, undefined);
    } finally {
      this.holdOpen(-1);
    }
  }
}

registerHandle('JoinableQueue', (wire) => reviveQueue(JoinableQueue, wire));
