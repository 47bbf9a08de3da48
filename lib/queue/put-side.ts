// The put side of a queue holder: slot reservation, capture, the feeder, and puts waiting for a slot.
//
// A put reserves a slot (cells.ts: reserve), then captures the item into the holder's current batch at once
// (captured: later mutation does not change it; an uncloneable value throws here and the slot is given back).
// The feeder posts the batch to the hub when the thread yields (setImmediate), when it passes kBatchItems or
// kBatchBytes, on flush(), when a handle of the queue is handed to another thread, and when the thread exits.
// An item that moves things (a transfer list, ports, handles) or holds host objects the platform must clone
// travels alone, posted at the call (after the batch before it, to keep this holder's order), so that the
// platform's own errors reach the caller. A put while every counted item is claimed, with nothing of this
// holder's buffered, writes a small item into the queue's hand-off ring instead, where any get finds it without
// the hub (cells.ts, "The hand-off").
//
// Invariants:
//   Blocked puts (bounded queue full) are served in call order, one at a time; each leaves the line on its own
//     timeout or signal (wherever it stands in it) or on close(); a slot is reserved only for the put at the
//     head, in the same synchronous step that resolves it. Their items were captured at the call.
//   #encoder holds only items whose slots are reserved; #flushScheduled is set exactly while it holds some and
//     the feeder has not run.
import { onAbort } from '../abort.ts';
import { markBuffered, postBufferedPuts, unmarkBuffered } from '../context.ts';
import { ErrorCode, Full, ProcessError } from '../errors.ts';
import {
  abort,
  captureItem,
  captureOrSink,
  captureToWait,
  commit,
  isHandle,
  marshalHandles,
  type Captured,
  type Handle,
  type ItemSink,
} from '../handles.ts';
import {
  checkOptions,
  checkSignal,
  checkTimeout,
  checkTransferList,
  type TransferItem,
  type WaitOptions,
} from '../options.ts';
import { blockUntil, waitUntil } from '../shared-wait.ts';
import { Encoder, type LoneItem } from '../wire/encode.ts';
import { Carrying } from '../wire/format.ts';
import {
  beginHandOff,
  cancelHandOff,
  kNoRoom,
  counted,
  endHandOff,
  handedOff,
  kRingSlots,
  kRoom,
  kRoomWaiters,
  reserve,
  size,
  unreserve,
  wakeRoom,
} from './cells.ts';
import { Op, type HolderMessage } from './protocol.ts';

/** Items per batch, and bytes per batch, past which put() hands the batch over at once. */
const kBatchItems = 1024;
const kBatchBytes = 1 << 20;
/** setTimeout overflows above 2^31-1 ms and fires at once; longer waits are treated as forever. */
const kMaxTimer = 0x7fffffff;

/** Options of `put`. */
export interface PutOptions extends WaitOptions {
  /** ArrayBuffers and MessagePorts to move with the item instead of copying them. */
  transfer?: TransferItem[];
}

const putKeys = ['timeout', 'signal', 'transfer'] as const;

/** What the put side needs of its queue holder. */
export interface PutHolder {
  readonly closed: boolean;
  readonly queueCells: Int32Array;
  /** The queue's whole shared buffer as bytes (the hand-off ring's slots). */
  readonly queueBytes: Uint8Array;
  readonly holderCells: Int32Array;
  readonly maxsize: number;
  readonly joinable: boolean;
  /** Puts may hand items straight to a waiting get (cells.ts, "The hand-off"). */
  readonly handsOff: boolean;
  post(message: HolderMessage, transfer?: readonly unknown[]): void;
  /** Posts what this holder buffers (context.ts: postBufferedPuts). */
  flushPuts(): void;
  /** Something to wait for started or ended: the holder decides whether its port keeps the program alive. */
  updateRef(): void;
  checkOpen(): void;
}

/** A put waiting for a slot in a full bounded queue, its item already captured. */
interface BlockedPut {
  item: LoneItem;
  /** The handles the item carries, marshalled at the call (a pipe end is on its way from then on). */
  captured: Captured | undefined;
  resolve: () => void;
  reject: (error: unknown) => void;
  /** No timeout and no signal: nothing but a slot ends it. */
  forGood: boolean;
  timer: NodeJS.Timeout | undefined;
  /** Stops listening for the put's signal. */
  unlisten: (() => void) | undefined;
}

const resolved = Promise.resolve();

export class PutSide {
  readonly #holder: PutHolder;
  #encoder: Encoder | undefined;
  #flushScheduled: NodeJS.Immediate | undefined;
  #blocked: BlockedPut[] = [];
  /** #drainBlocked() is running (it waits for slots in a loop). */
  #draining = false;
  /** Items went to the hub since the holder last synced with it (Holder.flushOnExit). */
  posted = false;
  /**
   * The last try at the hand-off ring found the bounded queue full: the put waits for room rather than count
   * its item, since a count made just after a get freed a slot would send it through the hub, and every put
   * after it too until the hub pushed it and it was claimed (that race sent 1-2% of a pipeline's items there).
   */
  #ringFull = false;
  /**
   * An item is being encoded into #encoder. A put made meanwhile by that item's own code (a getter, a registered
   * class's serialize()) is captured apart and added after it (#nested); a flush waits for it to end.
   */
  #adding = false;
  #nested: LoneItem[] = [];

  constructor(holder: PutHolder) {
    this.#holder = holder;
  }

  /** Puts wait for a slot: the holder's port must keep the program alive. */
  get waiting(): boolean {
    return this.#blocked.length > 0 || this.#draining;
  }

  /** Every put that waits for a slot waits for good (no timeout, no signal). */
  get waitingForGood(): boolean {
    return this.#blocked.length > 0 && this.#blocked.every((blocked) => blocked.forGood);
  }

  /** The puts waiting for a slot reject with `error`: nothing could ever free one. */
  failWaiting(error: unknown): void {
    for (const blocked of this.#blocked.splice(0)) this.#giveUp(blocked, error);
    wakeRoom(this.#holder.queueCells); // ends the drain loop's wait
    this.#holder.updateRef();
  }

  put(item: unknown, options: PutOptions | undefined): Promise<void> {
    const holder = this.#holder;
    // The hot path of a plain `await q.put(x)` loop: no options to check, a slot free, nobody ahead.
    if (options === undefined && this.#blocked.length === 0 && !holder.closed) {
      let lone: LoneItem | undefined;
      try {
        const put = this.#putIfRoom(item, undefined);
        if (put === true) return resolved;
        lone = put;
      } catch (error) {
        return Promise.reject(error);
      }
      if (lone !== undefined) return this.#waitInLine(lone, Infinity, undefined);
    }
    let timeout: number, signal: AbortSignal | undefined, transfer: unknown[] | undefined;
    try {
      const o = checkOptions(options, 'options', putKeys);
      timeout = checkTimeout(o.timeout);
      signal = checkSignal(o.signal);
      transfer = checkTransferList(o.transfer);
      holder.checkOpen();
      if (signal?.aborted) throw signal.reason;
      let lone: LoneItem | undefined;
      if (this.#blocked.length === 0) {
        const put = this.#putIfRoom(item, transfer);
        if (put === true) return resolved;
        lone = put;
      }
      if (timeout === 0) throw new Full();
      // Captured now, so the value is still the one of this call when a slot frees up (and its transfer list moved).
      return this.#waitInLine(lone ?? captureToWait(item, transfer), timeout, signal);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** A put whose item is captured waits for a slot, behind the puts already waiting. */
  #waitInLine(lone: LoneItem, timeout: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // Taken at the call, as its value is: a pipe end in it is unusable here while the put waits (and given
      // back if the put gives up), as one in a Process's args or a queued Pool call is.
      let captured: Captured | undefined;
      try {
        if (lone.handles.length > 0)
          captured = marshalHandles(lone.batch, lone.transfer, lone.handles as Handle[], lone.handleSlots);
      } catch (error) {
        reject(error);
        return;
      }
      const blocked: BlockedPut = {
        item: lone,
        captured,
        resolve,
        reject,
        forGood: timeout === Infinity && signal === undefined,
        timer: undefined,
        unlisten: undefined,
      };
      if (timeout !== Infinity && timeout <= kMaxTimer) {
        blocked.timer = setTimeout(
          () => this.#leaveLine(blocked, new Full(`queue is full: put() timed out after ${timeout} ms`)),
          timeout,
        );
      }
      if (signal !== undefined) {
        const aborting = signal;
        blocked.unlisten = onAbort(aborting, () => this.#leaveLine(blocked, aborting.reason));
      }
      this.#blocked.push(blocked);
      if (!this.#draining) void this.#drainBlocked();
    });
  }

  putNowait(item: unknown): void {
    this.#holder.checkOpen();
    if (this.#blocked.length > 0 || this.#putIfRoom(item, undefined) !== true) throw new Full();
  }

  /**
   * Puts `item` now if the queue has room: into the hand-off ring, or counted into the batch. Returns true once
   * done; when the queue is full, the item captured on the way (or undefined if it was not). Throws what
   * capturing throws.
   */
  #putIfRoom(item: unknown, transfer: unknown[] | undefined): true | LoneItem | undefined {
    const handed = transfer === undefined ? this.#handOff(item) : undefined;
    if (handed === true) return true;
    const holder = this.#holder;
    if ((handed !== undefined && this.#ringFull) || !reserve(holder.queueCells, holder.holderCells, holder.maxsize))
      return handed;
    if (handed === undefined) this.#add(item, transfer);
    else this.#addCaptured(handed);
    return true;
  }

  /**
   * Puts `item` into the queue's hand-off ring (cells.ts, "The hand-off"), where any get finds it without the
   * hub: true once done. Otherwise undefined, or the item captured on the way (the caller puts that). Throws
   * what capturing throws.
   */
  #handOff(item: unknown): true | LoneItem | undefined {
    this.#ringFull = false;
    if (!this.#mayHandOff()) return undefined;
    // A get may take it at once: what this thread put into other queues before goes first.
    postBufferedPuts();
    return captureOrSink(item, this.#ringSink);
  }

  /** Takes a captured item's bytes from the encoder straight into the ring. */
  readonly #ringSink: ItemSink = {
    take: (encoder: Encoder): boolean => {
      const holder = this.#holder;
      const q = holder.queueCells;
      const n = encoder.lastLength;
      const at = beginHandOff(q, holder.holderCells, n, holder.maxsize);
      this.#ringFull = at === kNoRoom;
      if (at < 0) return false;
      try {
        encoder.moveLastInto(holder.queueBytes, at);
      } catch (error) {
        cancelHandOff(q, holder.holderCells, holder.maxsize);
        throw error;
      }
      endHandOff(q, holder.holderCells, n, encoder.refs, holder.maxsize);
      return true;
    },
  };

  /** Puts an item captured earlier into the hand-off ring, if it may go there now (see #ringFull). */
  #handOffCaptured(lone: LoneItem): boolean {
    const holder = this.#holder;
    const q = holder.queueCells;
    this.#ringFull = false;
    if (lone.carrying !== Carrying.Nothing || !this.#mayHandOff()) return false;
    const bytes = new Uint8Array(lone.batch.bytes);
    const at = beginHandOff(q, holder.holderCells, bytes.length, holder.maxsize);
    this.#ringFull = at === kNoRoom;
    if (at < 0) return false;
    holder.queueBytes.set(bytes, at);
    endHandOff(q, holder.holderCells, bytes.length, lone.batch.refs, holder.maxsize);
    return true;
  }

  /**
   * Whether a put of this holder may go into the ring now: every item counted is claimed (so are this holder's
   * earlier items, which keeps its order), and the ring has a free slot.
   */
  #mayHandOff(): boolean {
    const holder = this.#holder;
    const q = holder.queueCells;
    // Items of ours in the batch are counted: the common case of a put loop, decided without reading kClaimed
    // (the consumers' cache line).
    if (!holder.handsOff || (this.#encoder !== undefined && this.#encoder.count > 0)) return false;
    return counted(q) === 0 && handedOff(q) < kRingSlots;
  }

  /**
   * Adds `item`, blocking the thread while a bounded queue is full (Full after `timeout` ms), and hands it to
   * the hub at once: a thread that blocks may never yield for a later handover.
   */
  putSync(item: unknown, timeout: number, transfer: unknown[] | undefined): void {
    const holder = this.#holder;
    holder.checkOpen();
    if (this.#blocked.length > 0) {
      throw new ProcessError(
        'putSync() while a put() of this thread waits for room: it would overtake it',
        ErrorCode.QueueBusy,
      );
    }
    const cells = holder.queueCells;
    // Captured before any wait, as put() does: an item that cannot be copied fails at the call, not once a slot
    // frees up (or as Full), and the transfer list is moved now.
    const handed = transfer === undefined ? this.#handOff(item) : captureToWait(item, transfer);
    if (handed === true) return;
    Atomics.add(cells, kRoomWaiters, 1);
    let reserved: boolean;
    let ringed = false;
    try {
      reserved = blockUntil(
        cells,
        kRoom,
        () => {
          if (handed !== undefined) {
            ringed = this.#handOffCaptured(handed);
            if (ringed || this.#ringFull) return ringed;
          }
          return reserve(cells, holder.holderCells, holder.maxsize);
        },
        { timeout },
      );
    } finally {
      Atomics.sub(cells, kRoomWaiters, 1);
    }
    if (!reserved) throw new Full(`queue is full: putSync() timed out after ${timeout} ms`);
    if (ringed) return;
    if (handed === undefined) this.#add(item, transfer);
    else this.#addCaptured(handed);
    this.flush();
  }

  /** Hands every item this holder put so far to the hub. */
  flush(): void {
    if (this.#adding) return; // called from inside an item being encoded: #add() ends by scheduling one
    if (this.#flushScheduled !== undefined) {
      clearImmediate(this.#flushScheduled);
      this.#flushScheduled = undefined;
    }
    const encoder = this.#encoder;
    if (encoder === undefined || encoder.count === 0) {
      unmarkBuffered(this.#holder);
      return;
    }
    // This thread's puts into other queues made before these go first (context.ts: postBufferedPuts).
    postBufferedPuts(this.#holder);
    const { batch, transfer } = encoder.finish();
    unmarkBuffered(this.#holder);
    this.#holder.post({ op: Op.Put, batch }, transfer);
    this.posted = true;
  }

  /** The holder closed: waiting puts reject with `error`; what is buffered is flushed first. */
  close(error: unknown): void {
    this.flush();
    for (const blocked of this.#blocked.splice(0)) this.#giveUp(blocked, error);
    wakeRoom(this.#holder.queueCells); // ends the drain loop's wait
  }

  /** Adds an item whose slot is reserved: into the batch, or alone if it moves things. */
  #add(item: unknown, transfer: unknown[] | undefined): void {
    const holder = this.#holder;
    if (this.#adding) {
      // A put from inside the item being encoded: captured apart, added once that item is (#endAdding).
      let lone: LoneItem;
      try {
        lone = captureItem(item, transfer);
      } catch (error) {
        unreserve(holder.queueCells, holder.holderCells, holder.joinable, holder.maxsize);
        throw error;
      }
      this.#nested.push(lone);
      return;
    }
    const encoder = (this.#encoder ??= new Encoder({ isHandle }));
    this.#adding = true;
    try {
      const carrying = encoder.put(item, { transfer });
      this.#adding = false; // before #postAlone(), whose flush must run
      if (carrying >= Carrying.Cloned) this.#postAlone(encoder.takeLast(transfer));
    } catch (error) {
      unreserve(holder.queueCells, holder.holderCells, holder.joinable, holder.maxsize);
      throw error;
    } finally {
      this.#adding = false;
      this.#endAdding();
    }
    this.#scheduleFlush();
  }

  /** Adds the items put from inside the one just encoded, in the order they were put. */
  #endAdding(): void {
    while (this.#nested.length > 0) {
      const lone = this.#nested.shift()!;
      try {
        this.#addCaptured(lone);
      } catch (error) {
        // Its put resolved long ago: nobody to tell but the program.
        process.emitWarning(`mpthreads: an item put from inside another item's capture was lost: ${String(error)}`);
      }
    }
  }

  /** Adds an item captured earlier (a put that waited for its slot, or one put from inside another's capture). */
  #addCaptured(lone: LoneItem, captured?: Captured): void {
    const holder = this.#holder;
    try {
      if (lone.carrying >= Carrying.Cloned) this.#postAlone(lone, captured);
      else (this.#encoder ??= new Encoder({ isHandle })).append(lone.batch);
    } catch (error) {
      unreserve(holder.queueCells, holder.holderCells, holder.joinable, holder.maxsize);
      throw error;
    }
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    const encoder = this.#encoder;
    if (encoder === undefined || encoder.count === 0) return;
    if (encoder.count >= kBatchItems || encoder.byteLength >= kBatchBytes) this.flush();
    else if (this.#flushScheduled === undefined) {
      this.#flushScheduled = setImmediate(this.#onFlushTimer);
      markBuffered(this.#holder);
    }
  }

  #onFlushTimer = (): void => {
    this.#flushScheduled = undefined;
    this.flush();
  };

  /** Posts an item on its own, after what this holder put before it. Throws what the platform throws. */
  #postAlone(
    lone: LoneItem,
    captured = marshalHandles(lone.batch, lone.transfer, lone.handles as Handle[], lone.handleSlots),
  ): void {
    try {
      this.flush();
      const moves = lone.carrying === Carrying.Moved ? captured.transfer.slice(1) : undefined; // not the bytes
      this.#holder.post({ op: Op.Put, batch: lone.batch, transfer: moves }, captured.transfer);
      this.posted = true;
    } catch (error) {
      abort(captured);
      throw error;
    }
    commit(captured, 'a queue');
  }

  /** Serves the blocked puts in call order: the head gets the next free slot. */
  async #drainBlocked(): Promise<void> {
    const holder = this.#holder;
    this.#draining = true;
    holder.updateRef();
    try {
      while (this.#blocked.length > 0) {
        const head = this.#blocked[0]!;
        if (this.#handOffCaptured(head.item)) {
          this.#blocked.shift();
          this.#settle(head);
          head.resolve();
          continue;
        }
        if (!this.#ringFull && reserve(holder.queueCells, holder.holderCells, holder.maxsize)) {
          this.#blocked.shift();
          this.#settle(head);
          try {
            this.#addCaptured(head.item, head.captured);
            head.resolve();
          } catch (error) {
            head.reject(error);
          }
          continue;
        }
        // Until a slot frees up or the head leaves the line (its timeout, its signal, close(): #leaveLine()
        // notifies). This holder's port keeps the program alive meanwhile (updateRef), so no timer has to.
        const q = holder.queueCells;
        Atomics.add(q, kRoomWaiters, 1);
        try {
          await waitUntil(
            q,
            kRoom,
            () => size(q) < holder.maxsize || this.#blocked[0] !== head,
            { timeout: Infinity, keepAlive: false },
            undefined,
          );
        } finally {
          Atomics.sub(q, kRoomWaiters, 1);
        }
      }
    } finally {
      this.#draining = false;
      holder.updateRef();
    }
  }

  /** A blocked put gives up (its timeout or signal) wherever it stands in the line. */
  #leaveLine(blocked: BlockedPut, error: unknown): void {
    const i = this.#blocked.indexOf(blocked);
    if (i === -1) return;
    this.#blocked.splice(i, 1);
    this.#giveUp(blocked, error);
    if (i === 0) wakeRoom(this.#holder.queueCells); // the drain loop waits for the head
    this.#holder.updateRef();
  }

  #settle(blocked: BlockedPut): void {
    if (blocked.timer !== undefined) clearTimeout(blocked.timer);
    blocked.unlisten?.();
  }

  /** A waiting put that will not be made: what it carries comes back (a pipe end is usable here again). */
  #giveUp(blocked: BlockedPut, error: unknown): void {
    this.#settle(blocked);
    if (blocked.captured !== undefined) abort(blocked.captured);
    blocked.reject(error);
  }
}
