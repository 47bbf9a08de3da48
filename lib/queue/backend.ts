// The seam between the queue classes (lib/queue.ts, lib/joinable-queue.ts, lib/simple-queue.ts) and the engine
// that keeps the items. The classes hold a QueueBackend and call nothing else; the local engine (holder.ts:
// the process's hub and shared memory) implements it, and another engine (Redis, later) implements the same.
// Tests of behaviour every engine shares are written once (test/queue/conformance.ts) and run per engine.
import type { WireHandle } from '../handles.ts';
import type { WaitOptions } from '../options.ts';
import type { PutOptions } from './put-side.ts';

/** Which public class a holder is, for another thread to rebuild the same. */
export type QueueKind = 'Queue' | 'JoinableQueue' | 'SimpleQueue';

/** One handle's view of a queue, whatever keeps its items. */
export interface QueueBackend {
  readonly kind: QueueKind;
  /** 0: unbounded. */
  readonly maxsize: number;
  readonly closed: boolean;
  /** Captures `item` now; resolves once it is buffered (a bounded queue: once a slot is free). */
  put(item: unknown, options: PutOptions | undefined): Promise<void>;
  putNowait(item: unknown): void;
  /** As put(), blocking the thread while a bounded queue is full; Full after `timeout` ms. */
  putSync(item: unknown, timeout: number, transfer: unknown[] | undefined): void;
  get(options: WaitOptions | undefined): Promise<unknown>;
  getNowait(): unknown;
  /** As get(), blocking the thread; Empty after `timeout` ms. */
  getSync(timeout: number): unknown;
  /** Items put and not yet taken, as this handle sees them (may be negative or above maxsize for a moment). */
  size(): number;
  /** Hands what this handle buffered to the engine: delivered from then on, whatever happens to this thread. */
  flush(): void;
  /** For good: waiting calls reject with `error`. */
  close(error: unknown): void;
  /** Tasks put and not yet marked done (JoinableQueue). */
  unfinished(): number;
  /** Marks one task done (JoinableQueue); false when none is unfinished. */
  taskDone(): boolean;
  /** Resolves true when every task is done, false when `timeout` passed first; rejects on abort or close. */
  join(timeout: number, signal: AbortSignal | undefined): Promise<boolean>;
  /** As join(), blocking the thread. */
  joinSync(timeout: number): boolean;
  /** The thread is exiting (not terminated): flush, unless cancelJoinThread() said not to. */
  cancelJoinThread(): void;
  /** A new handle of this queue for another thread: its wire record, and what to do once the post is known. */
  handOver(transfer: unknown[]): { record: WireHandle; commit(): void; abort(): void };
}
