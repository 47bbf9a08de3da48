// One holder of a queue: what its put side and get side share (its cells, its port to the hub, whether it is
// closed) and the rule for when its port keeps the program alive. The public classes (lib/queue.ts and the
// others) are facades over a Holder.
//
// Invariants:
//   The port has the get side's 'message' listener for the holder's lifetime, but is ref'd only while a get, a
//     blocked put or a join waits, so an idle queue never keeps the program alive. While something waits the
//     holder is also strongly held (`waiting`), so that it cannot be collected under a pending call.
//   The listener reaches the holder through a WeakRef, and the holder is registered with `dropped`: a holder
//     no code can reach any more (its facade dropped, no flush pending, nothing waiting) is collected and its
//     port closed (the hub sees a departure), so a queue dropped without close() costs nothing for good.
import type { MessagePort } from 'node:worker_threads';
import { ClosedError } from '../errors.ts';
import { GetSide, type GetHolder } from './get-side.ts';
import type { HolderMessage, HubMessage } from './protocol.ts';
import { PutSide, type PutHolder } from './put-side.ts';

/** Which public class a holder is, for another thread to rebuild the same. */
export type QueueKind = 'Queue' | 'JoinableQueue' | 'SimpleQueue';

/** Holders something waits on: kept alive while it does. */
const waiting = new Set<Holder>();
/** Closes the port of a facade that was collected without close(). */
const dropped = new FinalizationRegistry<MessagePort>((port) => port.close());

export class Holder implements PutHolder, GetHolder {
  readonly kind: QueueKind;
  readonly joinable: boolean;
  readonly maxsize: number;
  readonly queueCells: Int32Array;
  readonly holderCells: Int32Array;
  readonly port: MessagePort;
  /** JoinableQueue: the lease ring (the get side replaces it when it grows); null for other kinds. */
  ring: Int32Array | null;
  readonly puts: PutSide;
  readonly gets: GetSide;
  closed = false;
  /** cancelJoinThread() was called: this thread's exit does not flush. */
  joinCancelled = false;
  /** join() calls waiting on this holder. */
  joiners = 0;

  constructor(kind: QueueKind, maxsize: number, queueCells: Int32Array, holderCells: Int32Array, ring: Int32Array | null, port: MessagePort) {
    this.kind = kind;
    this.joinable = kind === 'JoinableQueue';
    this.maxsize = maxsize;
    this.queueCells = queueCells;
    this.holderCells = holderCells;
    this.ring = ring;
    this.port = port;
    this.puts = new PutSide(this);
    this.gets = new GetSide(this);
    const self = new WeakRef(this);
    port.on('message', (message: HubMessage) => self.deref()?.gets.onMessage(message));
    port.unref();
    dropped.register(this, port, this);
  }

  post(message: HolderMessage, transfer?: readonly unknown[]): void {
    this.port.postMessage(message, transfer as never[] | undefined);
  }

  checkOpen(): void {
    if (this.closed) throw new ClosedError('queue is closed');
  }

  flushPuts(): void {
    this.puts.flush();
  }

  /** This thread exits (process.exit(), a return, an uncaught exception): hand over what is buffered. */
  flushOnExit(): void {
    if (!this.closed && !this.joinCancelled) this.puts.flush();
  }

  /** The port keeps the program alive exactly while something waits on this holder. */
  updateRef(): void {
    if (this.closed) return;
    if (this.gets.waiting || this.puts.waiting || this.joiners > 0) {
      this.port.ref();
      waiting.add(this);
    } else {
      this.port.unref();
      waiting.delete(this);
    }
  }

  /** Closes for good: waiting calls reject with `error` (the caller has rejected its own, such as joins). */
  close(error: unknown): void {
    this.puts.close(error); // flushes first
    this.closed = true;
    this.gets.close(error);
    waiting.delete(this);
    dropped.unregister(this);
    this.port.removeAllListeners('message');
    this.port.close();
  }
}
