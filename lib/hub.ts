// The hub: a worker thread that keeps the items of the queues its creating thread made, so that delivery
// between other threads goes on while the creating thread is busy. It never decodes a batch on the hot path:
// producers' batches are leased whole to a consumer that asks, and decoded only to split one among several
// waiting consumers or to take back what a departed consumer had not taken.
//
// Invariants (per queue):
//   `entries` is sorted by (order, pos): the rank of the Put batch the items came in, and their offset in it.
//     Items leave only from the front; given-back and reclaimed items are inserted back at their rank, so the
//     next consumer gets the oldest items first, in put order.
//   Only an idle holder (not waiting) is recalled, and only when a consumer waits and `entries` is empty: a
//     consumer busy taking its lease keeps it, so each consumer sees a producer's items in order.
//   A holder is in `wanting` iff its `want` > 0; wants are served in arrival order.
//   Every item leased to a holder has a sequence number (per holder, increasing). Items below
//     max(counters[kTakenSeq], givenBackTo) are settled: taken by a get or given back. The rest of `leases` is
//     what the hub must put back if the holder goes away.
//   `received` counts the items a holder's port delivered; counters[kPutCount] - received is what a departed
//     holder put but never sent, and is subtracted from the queue's size (and unfinished count).
import { parentPort, type MessagePort } from 'node:worker_threads';
import { decodeBatch } from './wire.ts';
import {
  kPutCount, kReply, kSize, kStarving, kTakenSeq, kUnfinished, Op,
  type Batch, type CreateMessage, type HolderMessage, type HubMessage,
} from './queue-protocol.ts';

interface Lease { seq: number; batch: Batch }

class HubQueue {
  readonly counters: Int32Array;
  /** Sorted by (order, pos): the order in which the items were put, whatever went out and came back. */
  readonly entries: Batch[] = [];
  arrivals = 0;
  readonly wanting: Holder[] = [];
  readonly holders = new Set<Holder>();
  constructor(shared: SharedArrayBuffer) {
    this.counters = new Int32Array(shared);
  }

  serve(): void {
    if (this.wanting.length > 0 && this.recallLeftovers()) return;
    while (this.wanting.length > 0 && this.entries.length > 0) {
      const holder = this.wanting[0]!;
      const entry = this.entries[0]!;
      // One consumer waiting gets whole batches, several at once up to a budget, so that it does not have to
      // ask again per batch (throughput); several consumers share a batch item by item (fairness).
      if (this.wanting.length === 1) {
        // With other consumers around, one batch at a time, so that a busy stream alternates between them.
        let items = Math.max(holder.want, this.consumers() > 1 ? 1 : kLeaseItems);
        let bytes = kLeaseBytes;
        do {
          const next = this.entries.shift()!;
          items -= next.n;
          bytes -= weight(next);
          holder.lease(next);
        } while (this.entries.length > 0 && items > 0 && bytes > 0);
      } else if (entry.n <= holder.want) {
        this.entries.shift();
        holder.lease(entry);
      } else {
        const values = valuesOf(entry);
        const part = values.splice(0, holder.want);
        const pos = entry.pos ?? 0;
        this.entries[0] = { n: values.length, values, order: entry.order, pos: pos + part.length };
        holder.lease({ n: part.length, values: part, order: entry.order, pos });
      }
      if (holder.want <= 0) this.wanting.shift();
    }
    this.rescueWaiting();
  }

  /** How many holders have taken items so far (consumers, as opposed to producers only). */
  consumers(): number {
    let n = 0;
    for (const holder of this.holders) if (holder.nextSeq > 0) n++;
    return n;
  }

  /** Puts items that came back (given back, or left by a departed holder) where they were in put order. */
  insert(batch: Batch): void {
    const key = (b: Batch) => (b.order ?? 0) * 2 ** 21 + (b.pos ?? 0);
    const k = key(batch);
    let i = 0;
    while (i < this.entries.length && key(this.entries[i]!) <= k) i++;
    this.entries.splice(i, 0, batch);
  }

  /**
   * Items other holders leased and have not taken are older than anything in `entries`: while a consumer
   * waits, they are recalled and served first, so every consumer sees each producer's items in put order and a
   * consumer that stopped (say, at a sentinel) does not keep items others are waiting for. A holder gives them
   * back at its next get() (it reads kStarving) or when its event loop sees the Recall. Its own in-flight
   * items do not hold a waiting consumer back. Returns true while the waiting consumers must wait for that.
   */
  recallLeftovers(): boolean {
    let holding = false;
    for (const holder of this.holders) {
      if (this.wanting.length === 1 && this.wanting[0] === holder) continue;
      if (holder.unsettled() > holder.want) {
        holding = true;
        holder.recall();
      }
    }
    if ((Atomics.load(this.counters, kStarving) === 1) !== holding) Atomics.store(this.counters, kStarving, holding ? 1 : 0);
    return holding;
  }

  rescueWaiting(): void {
    if (this.wanting.length > 0) this.recallLeftovers();
    else if (Atomics.load(this.counters, kStarving) === 1) Atomics.store(this.counters, kStarving, 0);
  }
}

class Holder {
  readonly port: MessagePort;
  readonly counters: Int32Array;
  readonly queue: HubQueue;
  received = 0;
  want = 0;
  nextSeq = 0;
  givenBackTo = 0;
  leases: Lease[] = [];
  recalled = false;

  constructor(queue: HubQueue, port: MessagePort, counters: SharedArrayBuffer) {
    this.queue = queue;
    this.port = port;
    this.counters = new Int32Array(counters);
    queue.holders.add(this);
    port.on('message', (message: HolderMessage) => this.onMessage(message));
    port.on('close', () => this.depart());
  }

  settledSeq(): number {
    return Math.max(Atomics.load(this.counters, kTakenSeq), this.givenBackTo);
  }

  unsettled(): number {
    return this.nextSeq - this.settledSeq();
  }

  lease(batch: Batch): void {
    const seq = this.nextSeq;
    this.nextSeq += batch.n;
    this.want = Math.max(0, this.want - batch.n);
    this.prune();
    this.leases.push({ seq, batch });
    const message: HubMessage = { op: Op.Items, seq, batch };
    // Bytes are copied, not transferred: the hub keeps them until the holder has taken every item.
    this.port.postMessage(message, (batch.transfer ?? []) as never[]);
  }

  recall(): void {
    if (this.recalled) return;
    this.recalled = true;
    const message: HubMessage = { op: Op.Recall };
    this.port.postMessage(message);
  }

  prune(): void {
    const settled = this.settledSeq();
    let i = 0;
    while (i < this.leases.length && this.leases[i]!.seq + this.leases[i]!.batch.n <= settled) i++;
    if (i > 0) this.leases.splice(0, i);
  }

  onMessage(message: HolderMessage): void {
    const queue = this.queue;
    switch (message.op) {
      case Op.Put:
        this.received += message.batch.n;
        message.batch.order = ++queue.arrivals;
        message.batch.pos = 0;
        queue.entries.push(message.batch);
        queue.serve();
        return;
      case Op.Want:
        this.recalled = false;
        if (this.want === 0 && message.n > 0) queue.wanting.push(this);
        else if (message.n === 0) remove(queue.wanting, this);
        this.want = message.n;
        queue.serve();
        if (message.now === true) {
          // getNowait() blocks its thread until this answer: whatever could be leased has been; drop the rest.
          if (this.want > 0) { this.want = 0; remove(queue.wanting, this); }
          Atomics.add(this.counters, kReply, 1);
          Atomics.notify(this.counters, kReply);
        }
        return;
      case Op.GiveBack:
        this.recalled = false;
        if (message.batch.n > 0) for (const chunk of this.chunks(message.from, message.batch)) queue.insert(chunk);
        this.givenBackTo = message.from + message.batch.n;
        this.prune();
        queue.serve();
        return;
      case Op.Attach:
        new Holder(queue, message.port as unknown as MessagePort, message.counters);
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

  /** Cuts items given back from seq `from` along the leases they came in, so each goes back to its place. */
  chunks(from: number, batch: Batch): Batch[] {
    const values = batch.values ?? [];
    const covering = this.leases.filter(({ seq, batch: b }) => seq + b.n > from && seq < from + values.length);
    if (covering.length === 0) return [batch];
    const first = covering[0]!;
    if (batch.transfer !== undefined && batch.transfer.length > 0) {
      // Ports cannot be split between messages: keep the items together, at the place of the oldest.
      return [{ ...batch, order: first.batch.order, pos: (first.batch.pos ?? 0) + Math.max(0, from - first.seq) }];
    }
    return covering.map(({ seq, batch: b }) => {
      const start = Math.max(seq, from);
      const end = Math.min(seq + b.n, from + values.length);
      const part = values.slice(start - from, end - from);
      return { n: part.length, values: part, order: b.order, pos: (b.pos ?? 0) + (start - seq) };
    });
  }

  /** The holder's port closed (close(), exit, terminate): settle what it left behind. */
  depart(): void {
    const queue = this.queue;
    if (!queue.holders.delete(this)) return;
    remove(queue.wanting, this);
    const lost = Atomics.load(this.counters, kPutCount) - this.received;
    if (lost > 0) {
      Atomics.sub(queue.counters, kSize, lost);
      Atomics.sub(queue.counters, kUnfinished, lost);
      Atomics.notify(queue.counters, kSize);
      Atomics.notify(queue.counters, kUnfinished);
    }
    const settled = this.settledSeq();
    const back: Batch[] = [];
    for (const { seq, batch } of this.leases) {
      if (seq + batch.n <= settled) continue;
      if (batch.transfer !== undefined && batch.transfer.length > 0) continue; // its ports went with it
      const skip = Math.max(0, settled - seq);
      if (skip === 0) back.push(batch);
      else {
        const values = valuesOf(batch).slice(skip);
        back.push({ n: values.length, values, order: batch.order, pos: (batch.pos ?? 0) + skip });
      }
    }
    this.leases = [];
    for (const batch of back) queue.insert(batch);
    if (queue.holders.size === 0) queues.delete(queue);
    else queue.serve();
  }
}

const queues = new Set<HubQueue>();

/** What one lease to a lone consumer may carry: enough to cover a round trip at full speed. */
const kLeaseItems = 2048;
const kLeaseBytes = 4 << 20;

function weight(batch: Batch): number {
  let bytes = batch.bytes?.byteLength ?? 0;
  if (batch.side) for (let i = 1; i < batch.side.length; i += 2) bytes += (batch.side[i] as ArrayBuffer).byteLength;
  return bytes;
}

function valuesOf(batch: Batch): unknown[] {
  if (batch.values !== undefined) return batch.values;
  return decodeBatch(batch.bytes!, batch.side ?? null);
}

function remove<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i !== -1) list.splice(i, 1);
}

/** Entry point, called by workers/bootstrap.mjs in the hub worker. */
export function main(): void {
  parentPort!.on('message', (message: CreateMessage) => {
    if (message.op !== Op.Create) throw new Error(`hub: unknown message ${JSON.stringify(message)}`);
    const queue = new HubQueue(message.shared);
    queues.add(queue);
    new Holder(queue, message.port as unknown as MessagePort, message.counters);
  });
}
