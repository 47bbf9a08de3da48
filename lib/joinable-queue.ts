// JoinableQueue: a Queue whose consumers mark items done, so a producer can wait for all work to finish.
// The unfinished count is the queue's kReserved (items put, ever) minus kDone (tasks done, ever): put counts
// its task in the same atomic step that counts its item, taskDone() counts one done in any thread, join()
// waits in any thread for the two to meet (queue/cells.ts). Every get leases its item to its holder until a
// taskDone() of that holder acknowledges it: a consumer that dies with leases has them delivered again to
// others by the hub, so join() neither hangs nor loses an item (at-least-once).
import { ClosedError, ProcessError, TimeoutError, ErrorCode } from './errors.ts';
import type { WaitOptions } from './options.ts';
import { checkWaitOptions } from './options.ts';
import { kJoinWake, taskDone, unfinished } from './queue/cells.ts';
import { adopt, holderFor, holderOf, Queue, registerQueueKind, type QueueOptions } from './queue.ts';
import { waitForCell } from './shared-wait.ts';

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
  /** Rejects the join() calls waiting on this handle when it closes. */
  #joins = new Set<(error: unknown) => void>();

  constructor(options?: QueueOptions) {
    super(holderFor('JoinableQueue', options));
  }

  /**
   * Marks one task done: this handle's oldest item got and not yet marked done. Throws `ProcessError`
   * (ERR_TASK_DONE_TOO_MANY) if no task is unfinished.
   */
  taskDone(): void {
    const h = holderOf(this);
    h.checkOpen();
    if (!taskDone(h.queueCells, h.holderCells)) throw new ProcessError('taskDone() called too many times', ErrorCode.TaskDoneTooMany);
  }

  /**
   * Resolves when every item put, by any holder, has been marked done by any holder. Rejects with
   * `TimeoutError` when `timeout` passes first, with the signal's reason on abort, and with `ClosedError` if
   * this handle is closed meanwhile. While it waits it keeps the program alive.
   */
  async join(options?: WaitOptions): Promise<void> {
    const { timeout, signal } = checkWaitOptions(options);
    const h = holderOf(this);
    h.checkOpen();
    const cells = h.queueCells;
    if (unfinished(cells) <= 0) return;
    const closed = new AbortController();
    const onClose = (error: unknown) => closed.abort(error);
    this.#joins.add(onClose);
    const both = signal === undefined ? closed.signal : AbortSignal.any([signal, closed.signal]);
    h.joiners++;
    h.updateRef();
    try {
      // The unfinished count spans two cells, so wait on kJoinWake, bumped whenever it may have reached 0.
      const finished = await waitForCell(cells, kJoinWake, () => unfinished(cells) <= 0, timeout, both);
      if (!finished) throw new TimeoutError(`join() timed out after ${timeout} ms with ${unfinished(cells)} tasks unfinished`);
    } finally {
      this.#joins.delete(onClose);
      h.joiners--;
      h.updateRef();
    }
  }

  override close(): void {
    const error = new ClosedError('queue is closed');
    for (const reject of this.#joins) reject(error);
    super.close();
  }
}

registerQueueKind('JoinableQueue', (holder) => adopt(holder, () => new JoinableQueue()));
