// JoinableQueue: a Queue whose consumers mark items done, so a producer can wait for all work to finish.
// The unfinished count is the queue's shared kReserved (items put, ever) minus kDone (taskDone() calls, ever):
// put() counts its task in the same atomic step that counts its item, taskDone() adds to kDone in any thread,
// join() waits in any thread for the two to meet. The hub takes items a dead producer counted but never sent
// off kReserved, and so off the unfinished count too.
import { ProcessError } from './errors.ts';
import { registerHandle } from './handles.ts';
import { Queue, reviveQueue } from './queue.ts';
import { kDone, kJoinWake, kReserved } from './queue-protocol.ts';
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
      const done = Atomics.load(counters, kDone);
      const unfinished = (Atomics.load(counters, kReserved) - done) | 0;
      if (unfinished <= 0) throw new ProcessError('taskDone() called too many times', 'ERR_TASK_DONE_TOO_MANY');
      if (Atomics.compareExchange(counters, kDone, done, (done + 1) | 0) === done) {
        if (unfinished === 1) {
          Atomics.add(counters, kJoinWake, 1);
          Atomics.notify(counters, kJoinWake);
        }
        return;
      }
    }
  }

  /** Resolves when every item put, by any holder, has been marked done by any holder. */
  async join(): Promise<void> {
    this.checkOpen();
    this.holdOpen(1);
    try {
      // The unfinished count spans two cells, so wait on kJoinWake, read before the count is checked.
      const counters = this.sharedCounters;
      const finished = () => ((Atomics.load(counters, kReserved) - Atomics.load(counters, kDone)) | 0) <= 0;
      await waitForCell(counters, kJoinWake, finished, Infinity, undefined);
    } finally {
      this.holdOpen(-1);
    }
  }
}

registerHandle('JoinableQueue', (wire) => reviveQueue(JoinableQueue, wire));
