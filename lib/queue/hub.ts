// The hub: one worker thread per process that keeps the items of every queue, so that delivery between
// threads goes on while any of them is busy, and a queue outlives the thread that made it. It numbers items in
// the order their batches were posted (intake()) and pushes batches, undecoded, to the holders whose window
// covers them; holders claim indexes among themselves through shared memory. See protocol.ts for the design and
// cells.ts for the shared cells.
//
// Invariants (per queue):
//   `log` holds, in index order, every item with an index in [first retained, available) that someone may still
//     need: unclaimed items, items pinned by a fetch, and (JoinableQueue) items leased and not yet acknowledged.
//     Entries are whole batches as they came, or single items cut out of one (sliceItem) when only leases kept
//     an old batch alive.
//   A holder has been sent every item with an index in [its first Want, sentTo) that was not claimed when the
//     hub got there, and nothing at or past `until`; `until` covers at least what the holder asked for and
//     slides to `width` past kClaimed. Deferred entries are sent only on Fetch; an entry that moved its things to
//     a holder is `gone`.
//   A holder's inbox holds what intake() took off its port and has not handled: each port's messages are
//     handled in order, puts in `seq` order (a put waits at most kGapMs for a missing earlier one). Between two
//     port events the inboxes are empty unless a gap is pending (gapTimer set); a departing holder's inbox is
//     handled as it departs.
//   `received` counts the items a holder's port delivered; cells[kPutCount] - received is what a departed
//     holder counted but never sent, and is taken off the queue's count.
//   kReserved = (sum of every holder's kPutCount, departed ones included) - `adjusted`, except while a holder is
//     between its two counting steps; one that died there leaves the queue `unsettled` until settle() (argued in
//     protocol.ts) has put it right.
//   `available` is an absolute count (a double); the shared cells hold it modulo 2^32 (see abs()).
//   A getNowait()'s request (a Want with `now`) is answered after the batches already on the queue's other
//     holders' ports (takeWaiting): each port delivers in order, but the hub serves the ports in no set order,
//     so a batch flushed by one thread before it told another to getNowait() could otherwise come after that
//     request.
import { parentPort, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { bug } from '../errors.ts';
import type { BootData } from '../protocol.ts';
import { adoptDeadThreads, recordDeath } from '../sync/threads.ts';
import { batchByteLength, carriedBuffers, sliceItem } from '../wire/batch.ts';
import { postRepairingPorts } from '../wire/ports.ts';
import type { Batch } from '../wire/format.ts';
import {
  abandon,
  FetchState,
  isCounting,
  kAttaching,
  kClaimed,
  kCounting,
  kFetchIndex,
  kFetching,
  kHolderId,
  kPutCount,
  kReply,
  kSyncGetting,
  kWaiting,
  kReserved,
  leasesOf,
  recount,
  ring,
  ringBell,
  tentativeLease,
  uncount,
  unfinishedClaims,
  unlockRingOf,
  dropWatches,
  wakeJoiners,
  wakeRoom,
} from './cells.ts';
import { Op, type ClientMessage, type HolderMessage, type HolderWire, type HubMessage } from './protocol.ts';

interface Entry {
  base: number;
  batch: Batch;
  /** Sent only on Fetch: it moves things (`transfer`), or it is one very large item. */
  deferred: boolean;
  transfer: unknown[] | undefined;
  /** Its things moved to the holder that fetched it: it cannot be sent again. */
  gone?: boolean;
}

/** A single item at least this large is sent only to the holder that claims it (moved, for a plain queue). */
const kMoveBytes = 8 << 20;
/** Entries kept below the claims only because of leases, past which the leased items are cut out of them. */
const kLeasedEntries = 16;
/**
 * How long after a holder departs the hub waits before it wakes every waiter of the queue. A departure is often
 * a thread dying, and the thread may still have an Atomics.waitAsync pending on the very cells the wake-up
 * notifies; on Node 20 a notify that reaches a dying thread's wait just as Node shuts that thread's task runner
 * down calls uv_async_send(NULL) and kills the process with SIGSEGV (a race in Node's platform, fixed by
 * nodejs/node#57910, after Node 20). The wait goes when the thread's isolate is disposed, a few ms after its
 * ports close (at most 9 ms seen here under load, from the port's close to the Worker's 'exit'); the wake-up
 * is only a repair for a waiter that a step of the departed holder left asleep, so it can wait that long.
 */
const kDepartureWakeMs = 200;
/** Departures that keep coming put the wake-up off no longer than this after it was first asked for (ms). */
const kLongestWakeDelayMs = 1_000;

/** How long puts are held back for one numbered before them that has not come (see intake()). */
const kGapMs = 50;

/** A getNowait()'s request: handled once no put waits (intake()). */
function isNowWant(message: HolderMessage): boolean {
  return message.op === Op.Want && message.now === true;
}

/** A message that holds a place in the queue's post order: a put, or a put that failed to post (Skip). */
function isNumbered(message: HolderMessage): boolean {
  return message.op === Op.Put || message.op === Op.Skip;
}

/** A numbered message's `seq`; a put without one (from an older copy of the library) goes as the next expected. */
function seqOf(message: HolderMessage, next: number): number {
  return (message.op === Op.Put || message.op === Op.Skip) && message.seq !== undefined ? message.seq : next;
}

class HubQueue {
  readonly cells: Int32Array;
  readonly joinable: boolean;
  readonly log: Entry[] = [];
  available = 0;
  readonly holders = new Set<Holder>();
  /**
   * Items holders counted that the hub took off kReserved (never sent) minus those it added back (queued
   * again). Not settle()'s corrections: those bring kReserved back to the identity this term is part of, so
   * counting them here would have every later settle() make them again.
   */
  adjusted = 0;
  /** The kPutCount of every departed holder, summed (modulo 2^32). */
  departedPuts = 0;
  /** A holder died between its two counting steps: kReserved may be one off. */
  unsettled = false;
  settleTimer: NodeJS.Timeout | undefined;
  settleDelay = 1;
  /** intake() is handling the holders' messages. */
  merging = false;
  /** The `seq` the next put is expected to have (intake()). */
  nextSeq = 0;
  /** Since when intake() has held puts back for a missing one (performance.now()), and its retry. */
  gapSince: number | undefined;
  gapTimer: NodeJS.Timeout | undefined;
  /** When a holder last departed (performance.now()), and the wake-up that waits for it (wakeLater()). */
  lastDeparture = Number.NEGATIVE_INFINITY;
  wakeTimer: NodeJS.Timeout | undefined;
  /** The latest time the pending wake-up may come (kLongestWakeDelayMs after it was first asked for). */
  wakeDue: number | undefined;

  constructor(cells: Int32Array, joinable: boolean) {
    this.cells = cells;
    this.joinable = joinable;
  }

  /** Takes `n` items a dead holder counted and never sent off the count (wakeAll() follows). */
  uncount(n: number): void {
    uncount(this.cells, n);
    this.adjusted = (this.adjusted + n) | 0;
  }

  /** Every waiter of the queue, in every thread, looks again: puts for room, gets, join(). */
  wakeAll(): void {
    wakeRoom(this.cells);
    ring(this.cells);
    if (this.joinable) wakeJoiners(this.cells);
  }

  /**
   * wakeAll(), once no holder has departed for kDepartureWakeMs (a departed thread may still be dying: see
   * there), but at most kLongestWakeDelayMs after it was first asked for.
   */
  wakeLater(): void {
    const now = performance.now();
    this.wakeDue ??= now + kLongestWakeDelayMs;
    const at = Math.min(this.lastDeparture + kDepartureWakeMs, this.wakeDue);
    clearTimeout(this.wakeTimer);
    this.wakeTimer = setTimeout(
      () => {
        this.wakeTimer = undefined;
        this.wakeDue = undefined;
        if (this.holders.size > 0) this.wakeAll();
      },
      Math.max(0, at - now),
    );
  }

  /** Queues an item claimed by a dead holder again, as a new item (the `requeued`-th of this repair). */
  requeue(batch: Batch, transfer: unknown[] | undefined, requeued: number): void {
    recount(this.cells, this.joinable, requeued);
    this.adjusted = (this.adjusted - 1) | 0;
    this.sequence(batch, transfer);
  }

  /** See protocol.ts, "settle(), argued". */
  settle(): void {
    this.settleTimer = undefined;
    if (!this.unsettled || this.holders.size === 0) return;
    const retry = () => {
      this.settleDelay = Math.min(this.settleDelay * 2, 100);
      this.settleTimer = setTimeout(() => this.settle(), this.settleDelay);
    };
    // Each holder's kCounting is read first and again last: a counting step that began and ended in between
    // (reserve() then unreserve(), a hand-off's hold of its slot) changes it, and the snapshot is not used.
    const countings: number[] = [];
    const puts: number[] = [];
    let sum = this.departedPuts;
    for (const holder of this.holders) {
      const counting = Atomics.load(holder.cells, kCounting);
      if (isCounting(counting)) {
        retry();
        return;
      }
      countings.push(counting);
      const n = Atomics.load(holder.cells, kPutCount);
      puts.push(n);
      sum += n;
    }
    const reserved = Atomics.load(this.cells, kReserved);
    let i = 0;
    for (const holder of this.holders) {
      const c = holder.cells;
      if (
        Atomics.load(c, kAttaching) !== 0 ||
        Atomics.load(c, kPutCount) !== puts[i] ||
        Atomics.load(c, kCounting) !== countings[i]
      ) {
        retry();
        return;
      }
      i++;
    }
    const uncounted = (reserved + this.adjusted - sum) | 0;
    if (uncounted !== 0) {
      uncount(this.cells, uncounted); // not this.uncount(): see `adjusted`
      this.wakeLater(); // a holder departed a moment ago
    }
    this.unsettled = false;
    this.settleDelay = 1;
  }

  /** The absolute index of `cell`, an index held modulo 2^32 within 2^31 of `available`. */
  abs(cell: number): number {
    return this.available + ((cell - (this.available | 0)) | 0);
  }

  /**
   * Handles what waits on the holders' ports, numbering the puts in the order they were posted (`seq`). Each
   * port delivers in order, but the hub serves the ports in no set order (one port's messages kept coming
   * first while another's waited, a review saw), so a put that another thread made after this one, having
   * learnt of it (a lock, an event, a message), could be numbered first. Puts are handled in `seq` order, each
   * message once those before it on its port are; the ports are read in turn, not at one instant, so a put
   * whose `seq` is past the next one expected waits for that one (a gap): its thread posts it right after
   * numbering it, so the ports are read again, and then again every millisecond, and after kGapMs the missing
   * one is taken for lost (its thread died in between). A getNowait()'s request (a Want with `now`) waits
   * until no put is left, as takeWaiting() would have it handle them first.
   */
  intake(): void {
    if (this.merging) return;
    this.merging = true;
    try {
      for (let pass = 0; ; pass++) {
        for (const holder of this.holders) holder.takeAll();
        const waitingFor = this.handleInboxes();
        if (waitingFor === undefined) {
          this.gapSince = undefined;
          return;
        }
        if (pass < 2) continue;
        const now = performance.now();
        this.gapSince ??= now;
        // A getNowait() waiting behind the gap blocks its thread: it is not kept waiting for a missing put.
        const asked = [...this.holders].some((holder) => holder.inbox.some(isNowWant));
        if (asked || now - this.gapSince >= kGapMs) {
          this.nextSeq = waitingFor; // what was numbered before it never came
          this.gapSince = undefined;
          continue;
        }
        this.gapTimer ??= setTimeout(() => {
          this.gapTimer = undefined;
          this.intake();
        }, 1);
        return;
      }
    } finally {
      this.merging = false;
    }
  }

  /**
   * Handles the messages taken into the holders' inboxes, in order (see intake()). Returns undefined once every
   * inbox is empty, or the lowest `seq` held back while an earlier one is missing.
   */
  handleInboxes(): number | undefined {
    for (;;) {
      let first: Holder | undefined;
      let firstSeq = 0;
      let asking: Holder | undefined;
      for (const holder of [...this.holders]) {
        const inbox = holder.inbox;
        while (inbox.length > 0 && !isNumbered(inbox[0]!) && !isNowWant(inbox[0]!)) holder.onMessage(inbox.shift()!);
        const head = inbox[0];
        if (head === undefined) continue;
        if (!isNumbered(head)) asking ??= holder;
        else if (first === undefined || ((seqOf(head, this.nextSeq) - firstSeq) | 0) < 0) {
          first = holder;
          firstSeq = seqOf(head, this.nextSeq);
        }
      }
      if (first !== undefined && ((firstSeq - this.nextSeq) | 0) <= 0) first.onMessage(first.inbox.shift()!);
      else if (first !== undefined) return firstSeq;
      else if (asking !== undefined) asking.onMessage(asking.inbox.shift()!);
      else return undefined;
    }
  }

  /**
   * The numbered message `seq` is handled: the next expected follows it (one handled late, by takeWaiting(), or
   * after a gap was given up on, moves nothing back).
   */
  handled(seq: number): void {
    if (((seq - this.nextSeq) | 0) >= 0) this.nextSeq = (seq + 1) | 0;
  }

  sequence(batch: Batch, transfer: unknown[] | undefined): void {
    const deferred = transfer !== undefined || (batch.n === 1 && batchByteLength(batch) >= kMoveBytes);
    this.log.push({ base: this.available, batch, deferred, transfer });
    this.available += batch.n;
    for (const holder of this.holders) holder.push();
  }

  /** The position in `log` of the first entry that ends after `index`. */
  position(index: number): number {
    const log = this.log;
    let lo = 0,
      hi = log.length;
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

  /**
   * Handles what the holders' ports hold (see the invariants), in the order it was posted, and what the ports
   * of holders attached meanwhile hold: a getNowait() is answered after all of it. A missing put is not waited
   * for here (the asking thread blocks until this answers).
   */
  takeWaiting(): void {
    const seen = new Set<Holder>();
    for (;;) {
      const fresh = [...this.holders].filter((h) => !seen.has(h));
      if (fresh.length === 0) return;
      for (const holder of fresh) {
        seen.add(holder);
        holder.takeAll();
      }
      for (let held = this.handleInboxes(); held !== undefined; held = this.handleInboxes()) this.nextSeq = held;
    }
  }

  /** Drops what every holder is done with: claimed items nobody is fetching and (JoinableQueue) nobody leases. */
  trim(): void {
    let low = this.abs(Atomics.load(this.cells, kClaimed));
    for (const holder of this.holders) {
      if (Atomics.load(holder.cells, kFetching) !== FetchState.Idle)
        low = Math.min(low, this.abs(Atomics.load(holder.cells, kFetchIndex)));
    }
    let leased: Set<number> | undefined;
    let oldestLease = low;
    if (this.joinable) {
      leased = new Set();
      for (const holder of this.holders) {
        for (const index of holder.leases()) {
          const i = this.abs(index);
          if (i < low) {
            leased.add(i);
            oldestLease = Math.min(oldestLease, i);
          }
        }
      }
    }
    const n = this.position(oldestLease);
    if (n > 0) this.log.splice(0, n);
    // Leases alone keep old batches alive: keep just the leased items, so that a consumer that never calls
    // taskDone() for one item does not keep everything put after it.
    if (leased !== undefined && leased.size > 0 && this.position(low) > kLeasedEntries) this.cutOut(leased, low);
  }

  /** Replaces the entries below `low` by the items of `leased` they hold, one entry each. */
  cutOut(leased: Set<number>, low: number): void {
    const end = this.position(low);
    const kept: Entry[] = [];
    for (let k = 0; k < end; k++) {
      const e = this.log[k]!;
      for (let i = 0; i < e.batch.n; i++) {
        if (!leased.has(e.base + i)) continue;
        kept.push(
          e.batch.n === 1
            ? e
            : {
                base: e.base + i,
                batch: sliceItem(e.batch, i),
                deferred: e.deferred,
                transfer: e.transfer,
                gone: e.gone,
              },
        );
      }
    }
    this.log.splice(0, end, ...kept);
  }
}

class Holder {
  readonly port: MessagePort;
  /** Messages taken off the port (intake) and not handled yet, in port order; empty between two events. */
  readonly inbox: HolderMessage[] = [];
  readonly cells: Int32Array;
  ring: Int32Array | null;
  readonly queue: HubQueue;
  received = 0;
  sentTo = 0;
  until = 0;
  /** How far past the claims the holder last asked to be pushed. */
  width = 0;

  constructor(queue: HubQueue, wire: HolderWire) {
    this.queue = queue;
    this.port = wire.port as unknown as MessagePort;
    this.cells = wire.cells;
    this.ring = wire.ring;
    queue.holders.add(this);
    this.port.on('message', (message: HolderMessage) => {
      // A put while the queue has other holders (the puts on their ports may have been posted first), or a
      // message behind others held back: in order (intake()).
      if (this.inbox.length > 0 || queue.gapTimer !== undefined || (isNumbered(message) && queue.holders.size > 1)) {
        this.inbox.push(message);
        queue.intake();
      } else this.onMessage(message);
    });
    this.port.on('close', () => this.depart());
  }

  /**
   * Its leases, the tentative one included (trim() keeps what they name). The tentative one is read first: a
   * claim that ends between the two reads moved the tail before it cleared kLeasing, so it is in the list.
   */
  leases(): number[] {
    if (this.ring === null) return [];
    const tentative = tentativeLease(this.cells, this.ring);
    const leases = leasesOf(this.cells, this.ring);
    if (tentative !== undefined) leases.push(tentative);
    return leases;
  }

  /** Sends what the window asks for and this holder has not been sent. */
  push(): void {
    const queue = this.queue;
    // A holder whose gets wait (in getSync(), or async) slides its window along with the claims: a blocked one
    // cannot ask for more, and others' claims may pass the end of a waiting one's window.
    const syncGetting = Atomics.load(this.cells, kSyncGetting) === 1;
    if (syncGetting || Atomics.load(this.cells, kWaiting) === 1) this.slide();
    const end = Math.min(this.until, queue.available);
    if (this.sentTo >= end) return;
    const from = this.sentTo;
    for (let i = queue.position(this.sentTo); i < queue.log.length; i++) {
      const { base, batch, deferred } = queue.log[i]!;
      if (base >= end) break;
      if (base + batch.n <= this.sentTo) continue; // cut-out entries below the window
      // Bytes are copied, not transferred: other holders may be sent the same batch, and the hub keeps it
      // until the items are claimed.
      const message: HubMessage = deferred
        ? { op: Op.Items, base: base | 0, batch: null, n: batch.n, deferred: true }
        : { op: Op.Items, base: base | 0, batch, n: batch.n };
      this.port.postMessage(message);
      this.sentTo = base + batch.n;
    }
    // A holder blocked in getSync() cannot hear the port: ring the queue's bell once the items are posted.
    if (this.sentTo !== from && syncGetting) ringBell(queue.cells);
  }

  /** Nothing below kClaimed is worth sending (it is taken), and the window reaches `width` past it. */
  slide(): void {
    const claimed = this.queue.abs(Atomics.load(this.queue.cells, kClaimed));
    this.sentTo = Math.max(this.sentTo, claimed);
    this.until = Math.max(this.until, claimed + this.width);
  }

  onMessage(message: HolderMessage): void {
    const queue = this.queue;
    switch (message.op) {
      case Op.Skip:
        queue.handled(message.seq);
        return;
      case Op.Put:
        if (message.seq !== undefined) queue.handled(message.seq);
        this.received += message.batch.n;
        queue.sequence(message.batch, message.transfer);
        return;
      case Op.Want: {
        if (message.now === true) queue.takeWaiting();
        // Nothing below kClaimed is worth sending: it is taken. And the window slides past it: others may have
        // claimed the whole window while this request travelled, and then nothing in it would ever be pushed
        // to wake the holder.
        this.sentTo = Math.max(this.sentTo, queue.abs(message.from));
        this.until = Math.max(this.until, queue.abs(message.until));
        this.width = message.width;
        this.slide();
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
        new Holder(queue, message.holder);
        Atomics.sub(this.cells, kAttaching, 1);
        return;
      case Op.Leases:
        this.ring = message.ring;
        return;
      case Op.Sync:
        this.reply();
        return;
      case Op.Close:
        this.port.close();
        return;
      default: {
        const unknown: never = message;
        throw bug(`hub: unknown message ${JSON.stringify(unknown)}`);
      }
    }
  }

  fetch(index: number): void {
    const entry = this.queue.find(index);
    if (entry === undefined || entry.gone === true) {
      // A broken invariant: say so to the holder instead of leaving its get() waiting.
      const message: HubMessage = { op: Op.Items, base: index | 0, batch: null, n: 0, fetched: true };
      this.port.postMessage(message);
      return;
    }
    const batch = entry.batch.n === 1 ? entry.batch : sliceItem(entry.batch, index - entry.base);
    // Ports can only move; a very large item moves too, so that the hub does not keep a copy of it (but for a
    // JoinableQueue, which must be able to deliver it again if its consumer dies before taskDone()).
    const moveBytes = entry.transfer === undefined && !this.queue.joinable;
    const transfer = entry.transfer ?? (moveBytes ? [batch.bytes, ...carriedBuffers(batch)] : []);
    if (transfer.length > 0) entry.gone = true;
    const message: HubMessage = { op: Op.Items, base: index | 0, batch, n: 1, fetched: true };
    // A port the item moves may have been closed from its other side while the item waited here: the item
    // still goes, as it would have arrived had it been taken before the close (wire/ports.ts).
    postRepairingPorts(this.port, message, batch, transfer);
  }

  /** Wakes a holder blocked in getNowait(): everything it asked for is posted. */
  reply(): void {
    Atomics.add(this.cells, kReply, 1);
    Atomics.notify(this.cells, kReply);
  }

  /** Takes what waits on the port into the inbox (intake()). */
  takeAll(): void {
    for (let entry = receiveMessageOnPort(this.port); entry !== undefined; entry = receiveMessageOnPort(this.port))
      this.inbox.push(entry.message as HolderMessage);
  }

  /** The holder's port closed (close(), exit, terminate, collected): settle what it left behind. */
  depart(): void {
    const queue = this.queue;
    if (!queue.holders.has(this)) return;
    // What intake() took off its port and held back (a gap) is handled now: its port closed.
    for (let message = this.inbox.shift(); message !== undefined; message = this.inbox.shift()) this.onMessage(message);
    queue.holders.delete(this);
    const puts = Atomics.load(this.cells, kPutCount);
    queue.departedPuts = (queue.departedPuts + puts) | 0;
    const lost = (puts - this.received) | 0;
    if (lost > 0) queue.uncount(lost);
    if (isCounting(Atomics.load(this.cells, kCounting))) queue.unsettled = true;
    // What it claimed and was not done with goes back to the queue, at the end: a JoinableQueue's leases (a
    // lease may be tentative: counted if its index was claimed at all), or a plain queue's item in fetch.
    const claimed = queue.abs(Atomics.load(queue.cells, kClaimed));
    let taken: number[] = [];
    if (this.ring !== null) {
      // Of its firm leases, no more than claimed items are unfinished (the newest), so that one whose task
      // another handle marked done does not come back (cells.ts: unfinishedClaims). The tentative one always,
      // if claimed at all: it may be another holder's item (a duplicate then), not one of these to crowd out.
      const owed = Math.max(0, unfinishedClaims(queue.cells));
      const firm = leasesOf(this.cells, this.ring)
        .map((i) => queue.abs(i))
        .filter((i) => i < claimed);
      taken = firm.slice(Math.max(0, firm.length - owed));
      const tentative = tentativeLease(this.cells, this.ring);
      if (tentative !== undefined && queue.abs(tentative) < claimed) taken.push(queue.abs(tentative));
    } else if (Atomics.load(this.cells, kFetching) === FetchState.Claimed)
      taken = [queue.abs(Atomics.load(this.cells, kFetchIndex))];
    let requeued = 0;
    for (const index of taken) {
      const entry = queue.find(index);
      if (entry === undefined || entry.gone === true) {
        if (queue.joinable) abandon(queue.cells, requeued);
        continue;
      }
      const batch = entry.batch.n === 1 ? entry.batch : sliceItem(entry.batch, index - entry.base);
      queue.requeue(batch, entry.transfer, ++requeued);
      if (entry.transfer !== undefined) entry.gone = true; // its things moved to the new entry
    }
    unlockRingOf(queue.cells, Atomics.load(this.cells, kHolderId)); // cells.ts, "The hand-off"
    dropWatches(queue.cells, this.cells);
    if (queue.holders.size === 0) {
      queues.delete(queue);
      clearTimeout(queue.settleTimer);
      clearTimeout(queue.wakeTimer);
      return;
    }
    queue.trim();
    // A holder stopped between a step and the wake-up that follows it (a take that freed a slot, a put it
    // published into the ring, a taskDone() that finished the last task) left its waiters asleep, and the
    // repairs above may have freed slots or finished tasks: wake them all, in every thread; each looks again.
    // Not before the departed thread is gone (kDepartureWakeMs): nor does settle(), which wakes them too.
    queue.lastDeparture = performance.now();
    queue.wakeLater();
    if (queue.unsettled && queue.settleTimer === undefined)
      queue.settleTimer = setTimeout(() => queue.settle(), kDepartureWakeMs);
  }
}

const queues = new Set<HubQueue>();

/** Serves one thread's port to the hub: queues it creates, ports for the threads it starts. */
function serve(port: MessagePort): void {
  port.on('message', (message: ClientMessage) => {
    switch (message.op) {
      case Op.Create: {
        const queue = new HubQueue(message.cells, message.joinable);
        queues.add(queue);
        new Holder(queue, message.holder);
        return;
      }
      case Op.Adopt: {
        const adopted = message.port as unknown as MessagePort;
        const thread = message.thread;
        if (thread !== undefined) adopted.once('close', () => recordDeath(thread));
        serve(adopted);
        return;
      }
      default: {
        const unknown: never = message;
        throw bug(`hub: unknown message ${JSON.stringify(unknown)}`);
      }
    }
  });
  port.on('close', () => port.removeAllListeners());
}

/** Entry point, called by workers/bootstrap.mjs in the hub's worker, with the main thread's port to it. */
export function main(boot: BootData): void {
  adoptDeadThreads(boot.threads);
  serve(boot.hub!);
  // Ready once the messages that waited for the hub were served (the port's go before the check phase).
  const ready = boot.hubReady;
  if (ready !== undefined)
    setImmediate(() => {
      Atomics.store(ready, 0, 1);
      Atomics.notify(ready, 0);
    });
  // The hub lives as long as the process: it must not keep it alive, nor stop while the main thread runs.
  parentPort?.unref();
}

/** @internal For tests of the repairs: the hub's state of a queue, by its cells. */
export function hubQueues(): ReadonlySet<HubQueue> {
  return queues;
}
export type { HubQueue };
