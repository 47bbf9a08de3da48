// The hub: a worker thread that keeps the items of the queues its creating thread made, so that delivery
// between other threads goes on while the creating thread is busy. It gives each item an index in arrival
// order and pushes batches, undecoded, to the holders whose window covers them; holders claim indexes among
// themselves through shared memory (see queue-protocol.ts). It decodes a batch only to re-queue an item a
// departed holder had claimed and not returned.
//
// Invariants (per queue):
//   `log` holds every item with an index in [first retained, available), in index order, as the batches came.
//     An item leaves the log only once it is claimed (index < kClaimed) and no holder pins it (kFetching != 0).
//   A holder has been sent every item with an index in [its first Want, sentTo) that was not claimed when the
//     hub got there, and nothing at or past `until`; `until` covers at least what the holder asked for and
//     slides to `width` past kClaimed. Items that move things (values) and single items of 8 MiB or more are
//     pushed as placeholders and sent only on Fetch, moved: such an entry is `gone` once fetched.
//   `received` counts the items a holder's port delivered; counters[kPutCount] - received is what a departed
//     holder counted but never sent, and is taken off the queue's size (kReserved; for a JoinableQueue that is
//     also its unfinished count).
//   kReserved = (sum of every holder's kPutCount, departed ones included) - `adjusted`, except while a holder
//     is between its two counting steps (kCounting); one that died there leaves the queue `unsettled` until
//     settle() has seen a moment with no holder counting and put the difference right.
//   `available` is an absolute count (a double); the shared cells hold it modulo 2^32 (see abs()).
import { parentPort, type MessagePort } from 'node:worker_threads';
import { batchByteLength, decodeBatch } from './wire.ts';
import {
  kAttaching, kClaimed, kCounting, kDone, kFetchIndex, kFetching, kJoinWake, kPutCount, kReply, kReserved, Op,
  type Batch, type CreateMessage, type HolderMessage, type HubMessage,
} from './queue-protocol.ts';

interface Entry {
  base: number;
  batch: Batch;
  /** Its values (and the ports they carry) went to the holder that fetched it. */
  gone?: boolean;
}

class HubQueue {
  readonly counters: Int32Array;
  readonly joinable: boolean;
  readonly log: Entry[] = [];
  available = 0;
  readonly holders = new Set<Holder>();
  /** Taken off kReserved by the hub (items dead holders never sent) minus added (items queued again). */
  adjusted = 0;
  /** The kPutCount of every departed holder, summed (modulo 2^32). */
  departedPuts = 0;
  /** A holder died between its two counting steps: kReserved may be one off. */
  unsettled = false;
  settleTimer: NodeJS.Timeout | undefined;
  settleDelay = 1;

  constructor(shared: SharedArrayBuffer, joinable: boolean) {
    this.counters = new Int32Array(shared);
    this.joinable = joinable;
  }

  /** Takes `n` items off the queue's count (negative: adds them), and wakes whoever waits on a lower count. */
  uncount(n: number): void {
    const counters = this.counters;
    Atomics.sub(counters, kReserved, n);
    this.adjusted = (this.adjusted + n) | 0;
    if (n > 0) {
      Atomics.notify(counters, kClaimed); // puts blocked on a full queue re-check the size
      if (this.joinable) { // join() re-checks the unfinished count
        Atomics.add(counters, kJoinWake, 1);
        Atomics.notify(counters, kJoinWake);
      }
    }
  }

  /**
   * Puts kReserved right after a holder died between its two counting steps, by comparing it with every
   * holder's kPutCount. That needs a moment when no live holder is counting (or attaching a holder the hub
   * cannot see yet): the kPutCounts are read before and after kReserved and must not have moved. Otherwise it
   * tries again a little later; meanwhile the size is at most one too high per such death.
   */
  settle(): void {
    this.settleTimer = undefined;
    if (!this.unsettled || this.holders.size === 0) return;
    const counters = this.counters;
    const puts: number[] = [];
    let sum = this.departedPuts;
    for (const holder of this.holders) {
      const n = Atomics.load(holder.counters, kPutCount);
      puts.push(n);
      sum += n;
    }
    const reserved = Atomics.load(counters, kReserved);
    let i = 0;
    for (const holder of this.holders) {
      const c = holder.counters;
      if (Atomics.load(c, kCounting) !== 0 || Atomics.load(c, kAttaching) !== 0 || Atomics.load(c, kPutCount) !== puts[i++]) {
        this.settleDelay = Math.min(this.settleDelay * 2, 100);
        this.settleTimer = setTimeout(() => this.settle(), this.settleDelay);
        return;
      }
    }
    const uncounted = (reserved + this.adjusted - sum) | 0;
    if (uncounted !== 0) this.uncount(uncounted);
    this.unsettled = false;
    this.settleDelay = 1;
  }

  /** The absolute index of `cell`, an index held modulo 2^32 within 2^31 of `available`. */
  abs(cell: number): number {
    return this.available + ((cell - (this.available | 0)) | 0);
  }

  sequence(batch: Batch): void {
    this.log.push({ base: this.available, batch });
    this.available += batch.n;
    for (const holder of this.holders) holder.push();
  }

  /** The position in `log` of the first entry that ends after `index`. */
  position(index: number): number {
    const log = this.log;
    let lo = 0, hi = log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = log[mid]!;
      if (e.base + e.batch.n <= index) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  find(index: number): Entry | undefined {
    const e = this.log[this.position(index)];
    return e !== undefined && e.base <= index ? e : undefined;
  }

  /** Drops what every holder is done with: claimed items nobody is fetching. */
  trim(): void {
    let low = this.abs(Atomics.load(this.counters, kClaimed));
    for (const holder of this.holders) {
      if (Atomics.load(holder.counters, kFetching) !== 0) low = Math.min(low, this.abs(Atomics.load(holder.counters, kFetchIndex)));
    }
    const n = this.position(low);
    if (n > 0) this.log.splice(0, n);
  }
}

class Holder {
  readonly port: MessagePort;
  readonly counters: Int32Array;
  readonly queue: HubQueue;
  received = 0;
  sentTo = 0;
  until = 0;

  constructor(queue: HubQueue, port: MessagePort, counters: SharedArrayBuffer) {
    this.queue = queue;
    this.port = port;
    this.counters = new Int32Array(counters);
    queue.holders.add(this);
    port.on('message', (message: HolderMessage) => this.onMessage(message));
    port.on('close', () => this.depart());
  }

  /** Sends what the window asks for and this holder has not been sent. */
  push(): void {
    const queue = this.queue;
    const end = Math.min(this.until, queue.available);
    if (this.sentTo >= end) return;
    for (let i = queue.position(this.sentTo); i < queue.log.length; i++) {
      const { base, batch } = queue.log[i]!;
      if (base >= end) break;
      const message: HubMessage = isDeferred(batch)
        ? { op: Op.Items, base: base | 0, batch: { n: batch.n }, deferred: true }
        : { op: Op.Items, base: base | 0, batch };
      // Bytes are copied, not transferred: other holders may be sent the same batch, and the hub keeps it
      // until the items are claimed.
      this.port.postMessage(message);
      this.sentTo = base + batch.n;
    }
  }

  onMessage(message: HolderMessage): void {
    const queue = this.queue;
    switch (message.op) {
      case Op.Put:
        this.received += message.batch.n;
        queue.sequence(message.batch);
        return;
      case Op.Want: {
        // Nothing below kClaimed is worth sending: it is taken. And the window slides past it: others may have
        // claimed the whole window while this request travelled, and then nothing in it would ever be pushed
        // to wake the holder.
        const claimed = queue.abs(Atomics.load(queue.counters, kClaimed));
        this.sentTo = Math.max(this.sentTo, queue.abs(message.from), claimed);
        this.until = Math.max(this.until, queue.abs(message.until), claimed + message.width);
        this.push();
        if (message.now === true) this.reply();
        queue.trim();
        return;
      }
      case Op.Fetch:
        this.fetch(queue.abs(message.index));
        if (message.now === true) this.reply();
        return;
      case Op.Release:
        queue.trim();
        return;
      case Op.Attach:
        new Holder(queue, message.port as unknown as MessagePort, message.counters);
        Atomics.sub(this.counters, kAttaching, 1);
        return;
      case Op.Close:
        this.port.close();
        return;
      default: {
        const unknown: never = message;
        throw new Error(`hub: unknown message ${JSON.stringify(unknown)}`);
      }
    }
  }

  fetch(index: number): void {
    const entry = this.queue.find(index);
    if (entry === undefined || entry.gone === true) {
      // A broken invariant: say so to the holder instead of leaving its get() waiting.
      const message: HubMessage = { op: Op.Items, base: index | 0, batch: { n: 0 }, fetched: true };
      this.port.postMessage(message);
      return;
    }
    const { batch } = entry;
    // Ports can only move; a very large item moves too, so that the hub does not keep a copy of it.
    const transfer = (batch.values !== undefined ? batch.transfer ?? [] : isDeferred(batch) ? buffersOf(batch) : []) as never[];
    if (transfer.length > 0) entry.gone = true;
    const message: HubMessage = { op: Op.Items, base: entry.base | 0, batch, fetched: true };
    this.port.postMessage(message, transfer);
  }

  /** Wakes a holder blocked in getNowait(): everything it asked for is posted. */
  reply(): void {
    Atomics.add(this.counters, kReply, 1);
    Atomics.notify(this.counters, kReply);
  }

  /** The holder's port closed (close(), exit, terminate): settle what it left behind. */
  depart(): void {
    const queue = this.queue;
    if (!queue.holders.delete(this)) return;
    const counters = queue.counters;
    const puts = Atomics.load(this.counters, kPutCount);
    queue.departedPuts = (queue.departedPuts + puts) | 0;
    const lost = (puts - this.received) | 0;
    if (lost > 0) queue.uncount(lost);
    if (Atomics.load(this.counters, kCounting) !== 0) queue.unsettled = true;
    // It claimed an item and died before its get returned it: queue that item again, at the end.
    if (Atomics.load(this.counters, kFetching) === 2) {
      const index = queue.abs(Atomics.load(this.counters, kFetchIndex));
      const entry = queue.find(index);
      if (entry !== undefined && entry.gone !== true) {
        const batch: Batch = entry.batch.values !== undefined
          ? entry.batch
          : { n: 1, values: [decodeBatch(entry.batch)[index - entry.base]] };
        queue.uncount(-1);
        // Its task was counted when it was first put: one taskDone() settles it, whoever gets it now.
        if (queue.joinable) Atomics.add(counters, kDone, 1);
        queue.sequence(batch);
      }
    }
    if (queue.unsettled && queue.settleTimer === undefined) queue.settle();
    if (queue.holders.size === 0) {
      queues.delete(queue);
      clearTimeout(queue.settleTimer);
    } else {
      queue.trim();
    }
  }
}

const queues = new Set<HubQueue>();

/** A single item at least this large is sent only to the holder that claims it, moved rather than copied. */
const kMoveBytes = 8 << 20;

/** Sent only on Fetch: items that move things, and very large single items. */
function isDeferred(batch: Batch): boolean {
  return batch.values !== undefined || (batch.n === 1 && batchByteLength(batch) >= kMoveBytes);
}

function buffersOf(batch: Batch): ArrayBuffer[] {
  const buffers = [batch.bytes!];
  if (batch.side) for (let i = 1; i < batch.side.length; i += 2) buffers.push(batch.side[i] as ArrayBuffer);
  return buffers;
}

/** Entry point, called by workers/bootstrap.mjs in the hub worker. */
export function main(): void {
  parentPort!.on('message', (message: CreateMessage) => {
    if (message.op !== Op.Create) throw new Error(`hub: unknown message ${JSON.stringify(message)}`);
    const queue = new HubQueue(message.shared, message.joinable);
    queues.add(queue);
    new Holder(queue, message.port as unknown as MessagePort, message.counters);
  });
}
