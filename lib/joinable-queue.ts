// JoinableQueue: a Queue whose consumers mark items done, so a producer can wait for all work to finish.
// Locally, the unfinished count is the queue's kReserved (items put, ever) minus kDone (tasks done, ever): put
// counts its task in the same atomic step that counts its item, taskDone() counts one done in any thread,
// join() waits in any thread for the two to meet (queue/cells.ts). Every get leases its item to its handle
// until a taskDone() of that handle acknowledges it: a consumer that dies with leases has them delivered
// again to others by the hub, so join() neither hangs nor loses an item (at-least-once).
import { ErrorCode, ProcessError, TimeoutError } from './errors.ts';
import { checkOptions, checkTimeout, checkWaitOptions, type WaitOptions } from './options.ts';
import { adopt, backendFor, backendOf, Queue, registerQueueKind, type QueueOptions } from './queue.ts';

/**
 * A Queue that counts unfinished tasks: every `put` adds one, every `taskDone()` removes one, and `join()`
 * resolves when the count is back to 0, whichever threads did the puts and the taskDone calls.
 *
 * Which item a `taskDone()` accounts for: the oldest item this handle got and has not marked done yet (its
 * oldest lease). A consumer that exits or is terminated with such items has them delivered again to another
 * consumer. Called on a handle that has no such item (a producer marking work done on a consumer's behalf, as
 * Python allows), it marks one unfinished task done without releasing anything.
 *
 * @example
 * const q = new JoinableQueue<string>();
 * await q.put('work');
 * const item = await q.get(); // ... do the work ...
 * q.taskDone();
 * await q.join(); // resolves: nothing unfinished
 */
export class JoinableQueue<T = unknown> extends Queue<T> {
  constructor(options?: QueueOptions) {
    super(backendFor('JoinableQueue', options));
  }

  /**
   * Marks one task done: this handle's oldest item got and not yet marked done. Throws `ProcessError`
   * (ERR_TASK_DONE_TOO_MANY) if no task is unfinished.
   */
  taskDone(): void {
    if (!backendOf(this).taskDone())
      throw new ProcessError('taskDone() called too many times', ErrorCode.TaskDoneTooMany);
  }

  /**
   * Resolves when every item put, by any holder, has been marked done by any holder. Rejects with
   * `TimeoutError` when `timeout` passes first, with the signal's reason on abort, and with `ClosedError` if
   * this handle is closed meanwhile. Called after `close()` (Python's put, close(), join()), it waits all the
   * same. While it waits it keeps the program alive.
   */
  async join(options?: WaitOptions): Promise<void> {
    const { timeout, signal } = checkWaitOptions(options);
    const backend = backendOf(this);
    if (!(await backend.join(timeout, signal))) {
      throw new TimeoutError(
        `join() timed out after ${timeout} ms with ${Math.max(backend.unfinished(), 0)} tasks unfinished`,
      );
    }
  }

  /** As join(), blocking the thread (in the main thread, the event loop too). */
  joinSync(options?: Omit<WaitOptions, 'signal'>): void {
    const timeout = checkTimeout(checkOptions(options, 'options', ['timeout']).timeout);
    const backend = backendOf(this);
    if (!backend.joinSync(timeout)) {
      throw new TimeoutError(
        `joinSync() timed out after ${timeout} ms with ${Math.max(backend.unfinished(), 0)} tasks unfinished`,
      );
    }
  }
}

registerQueueKind('JoinableQueue', (backend) => adopt(backend, () => new JoinableQueue()));
