// The shared-memory half of the queue protocol: the cells every holder of a queue and the hub read and write
// with Atomics, and every operation on them. Each operation says its ordering rule here, once; callers do not
// touch the cells any other way. (The message half is protocol.ts; the design, and the test that guards each
// cell, are there too.)
//
// Two arrays of Int32 cells:
//   queue cells  — one per queue, shared by every holder of it and by the hub;
//   holder cells — one per handle (a Queue object in some thread), shared by that holder and the hub only.
// A joinable queue's holder also has a lease ring (its own Int32Array), written by the holder, read by the hub.
//
// Counts and indexes wrap around at 2^32: compare them with diff(), never directly. A thread can be stopped
// (terminate()) between any two atomic steps, so every pair of steps below is ordered so that a stop between
// them either loses nothing or leaves a trace (kCounting, kFetching, kLeasing, kRingLock) the hub can repair
// from.

// ---- queue cells --------------------------------------------------------------------------------------
/**
 * Items counted by put (a slot reserved, for a bounded queue), ever. It falls only when a put gives its slot
 * back and when the hub takes off what a dead holder counted and never sent; it rises when the hub queues an
 * item again. The queue's size is kReserved - kClaimed. On its own 64-byte cache line: producers write it.
 */
export const kReserved = 0;
/**
 * Put messages posted to the hub, ever, by every holder: each takes the next number as it posts (holder.ts), so
 * that the hub numbers the puts waiting on several holders' ports in the order they were posted (hub.ts:
 * intake). Producers write it, as kReserved (same cache line).
 */
export const kPostSeq = 1;
/** The next index to claim: how many items gets have taken, ever. Consumers write it (its own cache line). */
export const kClaimed = 16;
/** JoinableQueue: tasks done, ever (taskDone() calls, and the hub's adjustments). Unfinished = kReserved - kDone. */
export const kDone = 32;
/** JoinableQueue: bumped and notified whenever the unfinished count may have reached 0. join() waits on it. */
export const kJoinWake = 33;
/** Holders of this queue made so far: each one's kHolderId is this count when it was made (never 0). */
export const kHolderIds = 34;
/** The hand-off ring (see "The hand-off" below): items taken from it, ever. Gets write it. */
export const kRingHead = 40;
/** Items put into the hand-off ring, ever: the lock's holder moves it once an item is written. */
export const kRingTail = 48;
/** The holder number of the put writing into the ring now, or 0: one put writes at a time. */
export const kRingLock = 49;
/** Puts waiting for room in a bounded queue, in any thread: while it is above 0, a claim rings kRoom. */
export const kRoomWaiters = 52;
/** Bumped and notified whenever a get blocked in getSync() may find something: a hand-off, a push to it. */
export const kBell = 53;
/**
 * Bumped and notified whenever room may have freed up in a bounded queue (a claim or a take from the ring while puts
 * wait, a put given back, the hub's corrections). Puts waiting for room sleep on it: it changes, so none of
 * those wake-ups is lost between a waiter's look and its sleep.
 */
export const kRoom = 54;
/**
 * Gets watching the hand-off ring, in any thread: async gets waiting on kRingTail and getSync() calls sleeping
 * on kBell. A put into the ring wakes them only while it is above 0. Each holder counts its own watches too
 * (kWatches), which the hub takes off when the holder departs, so a thread terminated while it watches does not
 * leave it high (puts would then notify nobody, in vain, for good).
 */
export const kRingWatchers = 55;
/** Each ring slot's meta word: the item's byte length | kRefsFlag. */
export const kRingMeta = 64;
export const kRingSlots = 16;
export const kQueueCells = kRingMeta + kRingSlots;
/** The ring's slots follow the queue cells, in the same buffer: a slot holds an item of at most kSlotBytes. */
export const kRingOffset = kQueueCells * Int32Array.BYTES_PER_ELEMENT;
export const kSlotBytes = 1024;

// ---- holder cells -------------------------------------------------------------------------------------
/** Items this holder counted in kReserved (at put time, before they leave the thread). */
export const kPutCount = 0;
/**
 * Odd while this holder changes kReserved and kPutCount (two cells no single step changes together): bumped
 * when it starts and when it ends, so that the hub sees a step that began and ended between two of its looks.
 */
export const kCounting = 1;
/** What this holder does about a deferred item (one the hub sends only on Fetch): see FetchState. */
export const kFetching = 2;
/** The index kFetching is about. */
export const kFetchIndex = 3;
/** Bumped (and notified) by the hub after it answered a synchronous request (getNowait). */
export const kReply = 4;
/** Attach messages this holder posted that the hub has not handled yet: holders the hub does not know of. */
export const kAttaching = 5;
/** JoinableQueue: the lease ring's oldest unacknowledged entry and one past its newest (counts, wrapping). */
export const kLeaseHead = 6;
export const kLeaseTail = 7;
/** JoinableQueue: 1 from writing a tentative lease at kLeaseTail to the end of the claim it is for. */
export const kLeasing = 8;
/**
 * 1 while this holder's thread blocks in getSync(): the hub then slides its window along with the claims and
 * rings the queue's kBell after each push to it.
 */
export const kSyncGetting = 9;
/** This holder's number among the queue's holders (kHolderIds); 0 for none (then it takes no part in hand-offs). */
export const kHolderId = 10;
/**
 * 1 while a get() of this holder waits: the hub then slides its window along with the claims, as for getSync()
 * (other holders' claims may pass the window's end, and then nothing in it would ever be pushed to wake it).
 */
export const kWaiting = 11;
/** Watches of the ring this holder counted in the queue's kRingWatchers and has not ended (watchRing()). */
export const kWatches = 12;
export const kHolderCells = 13;

export const FetchState = {
  /** Not fetching. */
  Idle: 0,
  /** About to claim kFetchIndex: the hub keeps the item (the claim may or may not happen). */
  Pinned: 1,
  /** Claimed kFetchIndex and waiting for the hub to send it: if this holder dies now, the hub queues it again. */
  Claimed: 2,
} as const;

/** Lease ring entries to start with; the holder grows the ring (and tells the hub) when it fills. */
export const kFirstLeaseCapacity = 64;

/** The queue cells, over a buffer that also holds the hand-off ring's slots (after kQueueCells). */
export function newQueueCells(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(kRingOffset + kRingSlots * kSlotBytes), 0, kQueueCells);
}

/** A holder's cells; with `q`, numbered among the queue's holders, so that it can take part in hand-offs. */
/** Holder numbers wrap within 31 bits, skipping 0. */
const kMaxHolderId = 0x7fffffff;

export function newHolderCells(q?: Int32Array): Int32Array {
  const h = new Int32Array(new SharedArrayBuffer(kHolderCells * Int32Array.BYTES_PER_ELEMENT));
  if (q !== undefined) Atomics.store(h, kHolderId, (Atomics.add(q, kHolderIds, 1) + 1) & kMaxHolderId || 1);
  return h;
}

export function newLeaseRing(capacity = kFirstLeaseCapacity): Int32Array {
  return new Int32Array(new SharedArrayBuffer(capacity * Int32Array.BYTES_PER_ELEMENT));
}

/** a - b for counts and indexes that wrap at 2^32 (correct while they are within 2^31 of each other). */
export function diff(a: number, b: number): number {
  return (a - b) | 0;
}

/**
 * Items in the queue: counted by puts and not yet claimed (both cells only grow, but for the hub's
 * corrections), and those in the hand-off ring.
 */
export function size(q: Int32Array): number {
  return counted(q) + handedOff(q);
}

/** Items counted by puts and not yet claimed: those that go through the hub. */
export function counted(q: Int32Array): number {
  return diff(Atomics.load(q, kReserved), Atomics.load(q, kClaimed));
}

/** JoinableQueue: items put whose taskDone() has not been called. */
export function unfinished(q: Int32Array): number {
  return diff(Atomics.load(q, kReserved), Atomics.load(q, kDone));
}

/**
 * Takes a slot for one item and counts it as this holder's (kPutCount; for a JoinableQueue the same step
 * counts its task). Counted before the item is captured: a holder stopped from here on (say, inside a getter
 * of the item) is settled by the hub, which takes off kPutCount - (items it received). kCounting brackets the
 * two cells; a holder that dies with it set leaves the hub to compare kReserved with every kPutCount.
 * Returns false (nothing counted) when a bounded queue is full.
 */
export function reserve(q: Int32Array, h: Int32Array, maxsize: number): boolean {
  beginCounting(h);
  if (maxsize === 0) {
    Atomics.add(q, kReserved, 1);
  } else {
    let sleepsEnd = 0;
    for (let looks = 0; ; looks++) {
      // The ring's tail first, so that a put into the ring that holds a slot, publishes its item and gives the
      // slot back between this look and the swap below (kReserved as read again, one more item in the ring) is
      // seen after the swap, which is then undone. kClaimed and kRingHead only grow: read late, they can only
      // make the queue look emptier than it was, which the same check after the swap covers.
      const tail = Atomics.load(q, kRingTail);
      const reserved = Atomics.load(q, kReserved);
      if (diff(reserved, Atomics.load(q, kClaimed)) + diff(tail, Atomics.load(q, kRingHead)) >= maxsize) {
        // A put into the ring counts its item twice for a moment (endHandOff()): it publishes the item, then lets
        // go of the slot it held, then of the lock. Look again once it let go of the slot.
        const lock = Atomics.load(q, kRingLock);
        if (Atomics.load(q, kReserved) !== reserved || lock !== 0) {
          if (looks < kHandOffSpins) continue;
          // Past the spin, that thread was likely descheduled or collecting garbage there: give it the core.
          if (lock !== 0) {
            const now = performance.now();
            sleepsEnd ||= now + kHandOffSleepsMs;
            if (now < sleepsEnd) {
              Atomics.wait(q, kRingLock, lock, kHandOffSleepMs);
              continue;
            }
          }
        }
        endCounting(h);
        return false;
      }
      if (Atomics.compareExchange(q, kReserved, reserved, (reserved + 1) | 0) !== reserved) continue;
      if (Atomics.load(q, kRingTail) === tail) break;
      Atomics.sub(q, kReserved, 1); // an item went into the ring meanwhile: the look above may be one short
      if (Atomics.load(q, kRoomWaiters) > 0) wakeRoom(q);
    }
  }
  Atomics.add(h, kPutCount, 1);
  endCounting(h);
  return true;
}

/**
 * How reserve() looks again at a full bounded queue while another put holds the hand-off ring, which ends within
 * a copy of at most kSlotBytes unless that thread is descheduled there, or stopped (then the hub frees the
 * lock): kHandOffSpins looks at once, then sleeps of kHandOffSleepMs between looks, for kHandOffSleepsMs. Without
 * the sleeps, 1 putNowait() in 200,000-400,000 still found a queue with room full (test/queue/hand-off.test.ts).
 */
const kHandOffSpins = 1024;
const kHandOffSleepMs = 0.1;
const kHandOffSleepsMs = 2;

/** kCounting becomes odd: this holder is between its counting steps. */
function beginCounting(h: Int32Array): void {
  Atomics.add(h, kCounting, 1);
}

/** kCounting becomes even again. */
function endCounting(h: Int32Array): void {
  Atomics.add(h, kCounting, 1);
}

/** A kCounting value read while its holder was between its counting steps. */
export function isCounting(counting: number): boolean {
  return (counting & 1) !== 0;
}

/** Gives back a slot whose item could not be captured or sent (bracketed as reserve() is). */
export function unreserve(q: Int32Array, h: Int32Array, joinable: boolean, maxsize: number): void {
  beginCounting(h);
  Atomics.sub(h, kPutCount, 1);
  Atomics.sub(q, kReserved, 1);
  endCounting(h);
  if (joinable) wakeJoiners(q);
  if (maxsize > 0) wakeRoom(q);
}

/** Tells puts waiting for room to look again. */
export function wakeRoom(q: Int32Array): void {
  Atomics.add(q, kRoom, 1);
  Atomics.notify(q, kRoom);
}

/** Tells join() to look again: after any change that may bring the unfinished count to 0. */
export function wakeJoiners(q: Int32Array): void {
  Atomics.add(q, kJoinWake, 1);
  Atomics.notify(q, kJoinWake);
}

/** Claims index `next` (the value read from kClaimed): true if this caller got it. Wakes blocked puts. */
export function claim(q: Int32Array, next: number, maxsize: number): boolean {
  if (Atomics.compareExchange(q, kClaimed, next, (next + 1) | 0) !== next) return false;
  // A waiter counts itself before it reads kRoom to sleep on it, so either it sees this claim or we see it.
  if (maxsize > 0 && Atomics.load(q, kRoomWaiters) > 0) wakeRoom(q);
  return true;
}

/**
 * Claims a deferred item: pinned first, so that the hub keeps it between the claim and the Fetch, then claimed.
 * A holder that dies Pinned leaves nothing to repair (the hub only kept the item longer); one that dies Claimed
 * has the hub queue the item again.
 */
export function claimPinned(q: Int32Array, h: Int32Array, next: number, maxsize: number): boolean {
  Atomics.store(h, kFetchIndex, next);
  Atomics.store(h, kFetching, FetchState.Pinned);
  if (!claim(q, next, maxsize)) {
    Atomics.store(h, kFetching, FetchState.Idle);
    return false;
  }
  Atomics.store(h, kFetching, FetchState.Claimed);
  return true;
}

/** The deferred item arrived: nothing left for the hub to repair. */
export function unpin(h: Int32Array): void {
  Atomics.store(h, kFetching, FetchState.Idle);
}

/**
 * JoinableQueue: claims `next` and records it as leased by this holder, in a way the hub can read if the holder
 * dies: the index is written tentatively at the ring's tail and kLeasing set before the claim, and the tail
 * moves after it. A holder that dies with kLeasing set may or may not have claimed the index; the hub then
 * counts it as leased if it was claimed at all (so an item is delivered again, at worst, never lost).
 * `claimOne` is claim() or claimPinned(). The caller grows the ring first when it is full (leaseRoom()).
 */
export function claimLeased(h: Int32Array, ring: Int32Array, next: number, claimOne: () => boolean): boolean {
  const tail = Atomics.load(h, kLeaseTail);
  Atomics.store(ring, tail & (ring.length - 1), next);
  Atomics.store(h, kLeasing, 1);
  const claimed = claimOne();
  if (claimed) Atomics.store(h, kLeaseTail, (tail + 1) | 0);
  Atomics.store(h, kLeasing, 0);
  return claimed;
}

/** JoinableQueue: true when the ring has room for one more lease. */
export function leaseRoom(h: Int32Array, ring: Int32Array): boolean {
  return diff(Atomics.load(h, kLeaseTail), Atomics.load(h, kLeaseHead)) < ring.length;
}

/** JoinableQueue: a ring twice the size holding the same leases, at the same positions modulo its length. */
export function growLeaseRing(h: Int32Array, ring: Int32Array): Int32Array {
  const grown = newLeaseRing(ring.length * 2);
  const head = Atomics.load(h, kLeaseHead);
  const tail = Atomics.load(h, kLeaseTail);
  for (let i = head; i !== tail; i = (i + 1) | 0)
    Atomics.store(grown, i & (grown.length - 1), Atomics.load(ring, i & (ring.length - 1)));
  return grown;
}

/**
 * JoinableQueue: this holder's unacknowledged leases, oldest first (read by the hub; see claimLeased). Not the
 * tentative one of a claim under way: tentativeLease().
 */
export function leasesOf(h: Int32Array, ring: Int32Array): number[] {
  const head = Atomics.load(h, kLeaseHead);
  const tail = Atomics.load(h, kLeaseTail);
  const out: number[] = [];
  for (let i = head; i !== tail; i = (i + 1) | 0) out.push(Atomics.load(ring, i & (ring.length - 1)));
  return out;
}

/** JoinableQueue: the index of the claim under way (kLeasing), if any (it may have gone to another holder). */
export function tentativeLease(h: Int32Array, ring: Int32Array): number | undefined {
  if (Atomics.load(h, kLeasing) === 0) return undefined;
  return Atomics.load(ring, Atomics.load(h, kLeaseTail) & (ring.length - 1));
}

/**
 * JoinableQueue: marks one task done. It acknowledges this holder's oldest lease if it has one; either way it
 * counts one task done in kDone, refusing to pass the number of tasks put (returns false: nothing unfinished).
 * kDone moves before the lease does: a holder that dies between the two leaves a lease the hub delivers again
 * (a duplicate, which at-least-once allows), never a task nobody can finish.
 */
export function taskDone(q: Int32Array, h: Int32Array): boolean {
  for (;;) {
    const done = Atomics.load(q, kDone);
    const left = diff(Atomics.load(q, kReserved), done);
    if (left <= 0) return false;
    if (Atomics.compareExchange(q, kDone, done, (done + 1) | 0) === done) {
      if (left === 1) wakeJoiners(q);
      break;
    }
  }
  const head = Atomics.load(h, kLeaseHead);
  if (head !== Atomics.load(h, kLeaseTail)) Atomics.store(h, kLeaseHead, (head + 1) | 0);
  return true;
}

/**
 * Hub, JoinableQueue: at most how many of a departed holder's firm leases to deliver again (its newest): the
 * claimed items whose tasks are not done, claimed - done. A taskDone() on a handle with no lease of its own (a
 * producer marking a consumer's work done, as Python allows) acknowledges no lease, so a lease alone does not
 * say its task is unfinished; without this bound, the death of a consumer whose task was marked done that way
 * delivered its item again, and join() waited for it again. The bound does not subtract the other holders'
 * leases: those may be finished the same way, and counting them could leave an unfinished item undelivered.
 * So it errs only towards a duplicate (at-least-once). Done is read before kClaimed: a claim or a taskDone()
 * between the two reads can only raise it.
 */
export function unfinishedClaims(q: Int32Array): number {
  const done = Atomics.load(q, kDone);
  return diff(Atomics.load(q, kClaimed), done);
}

// ---- the hand-off ----------------------------------------------------------------------------------------
//
// A put into a Queue or SimpleQueue (not a JoinableQueue) whose counted items are all claimed, with nothing of
// its own holder buffered, writes a small item that carries nothing into the queue's ring of kRingSlots slots,
// after the cells, instead of counting it and sending it to the hub; then it rings: it notifies kRingTail (gets
// waiting with Atomics.waitAsync watch it) and kBell (getSync sleeps on it). So while consumers keep up (a
// bounded pipeline, a round trip) items go from the producer's thread to the getter's through shared memory,
// with at most one wake-up, never seen by the hub. An item that carries things or does not fit, or finds the
// ring full or another put writing, takes the usual way.
//
// Puts write one at a time: a put takes kRingLock (compare-and-swap 0 -> its holder number; a put that finds it
// taken goes the usual way, it does not wait), writes slot kRingTail % kRingSlots, moves kRingTail, which
// publishes the item, and lets go of the lock. Gets take from any thread at once, without a lock: a get copies
// the slot at kRingHead, then moves kRingHead by compare-and-swap; only the get whose swap succeeds keeps its
// copy. A put writes a slot only once kRingHead passed its last item, which every other get's swap then fails
// on, so a kept copy was never written over while it was made. So a get has nothing half done that anyone
// must repair; a put stopped inside its write leaves the lock taken (its item was never published, and its put
// never returned): the hub frees it when that holder departs.
//
// Items in the ring come before anything counted: every get, of any holder, takes from the ring before it
// claims a counted item. Per-producer order holds. A producer writes into the ring only when all its earlier
// items are claimed or in the ring ahead of this one (no counted item is unclaimed); its later items are
// counted after this one was published, and a get can claim a counted item only once the hub pushed it to
// the get's thread, so any get that could claim them sees this one in the ring first. size() counts the
// ring's items, and a bounded queue counts them against maxsize.

/**
 * A get of holder `h` watches the ring: counted before it looks at kRingTail (a put then sees it, or it sees the
 * put's item). The queue's count first: a thread stopped between the two leaves it one high (a notify in vain),
 * while the other order would let the hub take off a watch never counted, and a watcher sleep through its item.
 */
export function watchRing(q: Int32Array, h: Int32Array): void {
  Atomics.add(q, kRingWatchers, 1);
  Atomics.add(h, kWatches, 1);
}

/** The watch ends: taken off the queue's count, unless the hub took it off already (the holder departed). */
export function unwatchRing(q: Int32Array, h: Int32Array): void {
  for (;;) {
    const n = Atomics.load(h, kWatches);
    if (n <= 0) return;
    if (Atomics.compareExchange(h, kWatches, n, n - 1) === n) break;
  }
  Atomics.sub(q, kRingWatchers, 1);
}

/** The hub: holder `h` departed, and the watches it had not ended end with it. */
export function dropWatches(q: Int32Array, h: Int32Array): void {
  const n = Atomics.exchange(h, kWatches, 0);
  if (n > 0) Atomics.sub(q, kRingWatchers, n);
}

/** Items in the hand-off ring. */
export function handedOff(q: Int32Array): number {
  return diff(Atomics.load(q, kRingTail), Atomics.load(q, kRingHead));
}

/** beginHandOff(): the bounded queue is full (the put waits for room: a count would find none either). */
export const kNoRoom = -2;

/**
 * Producer: takes the ring's lock and its next slot for an item of `n` bytes, if the item fits, the ring has
 * room (and the queue, at `maxsize`) and no other put is writing: the slot's byte offset in the queue's buffer;
 * kNoRoom when the queue is full; otherwise -1 (the item goes the usual way). The caller writes the item there (a batch of one, carrying nothing) and calls endHandOff(), or
 * cancelHandOff(). It checked that nothing counted is unclaimed and that its holder buffers nothing.
 *
 * In a bounded queue the slot is also held in kReserved until the item is published, so that the queue never
 * holds more than maxsize: a counted put's reserve() and this check then both compare-and-swap kReserved, and
 * neither can pass the other unseen. The hold is bracketed by kCounting as reserve() is (it is in kReserved and
 * in no kPutCount), so a holder that dies holding it is settled by the hub.
 */
export function beginHandOff(q: Int32Array, h: Int32Array, n: number, maxsize: number): number {
  const id = Atomics.load(h, kHolderId);
  if (n > kSlotBytes || id === 0) return -1;
  if (Atomics.compareExchange(q, kRingLock, 0, id) !== 0) return -1;
  const tail = Atomics.load(q, kRingTail);
  const held = diff(tail, Atomics.load(q, kRingHead));
  const full = held < kRingSlots && maxsize > 0 && !holdSlot(q, h, maxsize);
  if (held >= kRingSlots || full) {
    Atomics.store(q, kRingLock, 0);
    return full ? kNoRoom : -1;
  }
  return kRingOffset + (tail & (kRingSlots - 1)) * kSlotBytes;
}

/**
 * Bounded queue: counts one more in kReserved if the queue has room. The caller holds the ring's lock, so its
 * item count can only fall meanwhile: it is read again at each look (a count read once, before another thread
 * took from the ring and counted a put, saw the queue one fuller than it was).
 */
function holdSlot(q: Int32Array, h: Int32Array, maxsize: number): boolean {
  beginCounting(h);
  for (;;) {
    const reserved = Atomics.load(q, kReserved);
    if (diff(reserved, Atomics.load(q, kClaimed)) + handedOff(q) >= maxsize) {
      endCounting(h);
      return false;
    }
    if (Atomics.compareExchange(q, kReserved, reserved, (reserved + 1) | 0) === reserved) return true;
  }
}

/** The slot held by holdSlot() is given back: the item is in the ring now, or was not written. */
function releaseSlot(q: Int32Array, h: Int32Array): void {
  Atomics.sub(q, kReserved, 1);
  endCounting(h);
}

/**
 * Producer: the item of `n` bytes is written (`refs`: decode it keeping object ids): publish it, and wake the
 * gets that watch the ring.
 */
export function endHandOff(q: Int32Array, h: Int32Array, n: number, refs: boolean, maxsize: number): void {
  const tail = Atomics.load(q, kRingTail);
  q[kRingMeta + (tail & (kRingSlots - 1))] = n | (refs ? kRefsFlag : 0);
  Atomics.store(q, kRingTail, (tail + 1) | 0); // publishes the bytes written to whoever loads it
  if (maxsize > 0) {
    releaseSlot(q, h); // counted twice for a moment: never above maxsize
    // A put that looked in that moment saw the queue one fuller than it is, and may sleep on kRoom: it counted
    // itself among the waiters before it looked, so it is woken here.
    if (Atomics.load(q, kRoomWaiters) > 0) wakeRoom(q);
  }
  Atomics.store(q, kRingLock, 0);
  // A watcher counts itself before it reads kRingTail to wait on it: it sees this item, or we see it.
  if (Atomics.load(q, kRingWatchers) > 0) ring(q);
}

/** Producer: the item could not be written after all; the slot stays free. */
export function cancelHandOff(q: Int32Array, h: Int32Array, maxsize: number): void {
  if (maxsize > 0) {
    releaseSlot(q, h);
    wakeRoom(q);
  }
  Atomics.store(q, kRingLock, 0);
}

/** A ring slot's meta word: the batch must be decoded keeping object ids. */
export const kRefsFlag = 1 << 16;
/** A ring slot's meta word: the item's byte length. */
export const kLengthMask = 0xffff;

/** Wakes every get that waits on this queue, asynchronously (kRingTail) or blocked (kBell). */
export function ring(q: Int32Array): void {
  Atomics.notify(q, kRingTail);
  ringBell(q);
}

/** Wakes the gets blocked in getSync() on this queue (the hub, after a push to one of them). */
export function ringBell(q: Int32Array): void {
  Atomics.add(q, kBell, 1);
  Atomics.notify(q, kBell);
}

/** Hub: holder `id` departed; if it was inside a put's write into the ring, that write is dropped. */
export function unlockRingOf(q: Int32Array, id: number): void {
  if (id !== 0) Atomics.compareExchange(q, kRingLock, id, 0);
}

/**
 * Takes the oldest item in the ring, copied into `into` (kSlotBytes at least; `bytes` views the queue's whole
 * buffer): its meta word (length | kRefsFlag), or -1 when the ring is empty.
 */
export function takeHandedOff(q: Int32Array, bytes: Uint8Array, into: Uint8Array): number {
  for (;;) {
    const head = Atomics.load(q, kRingHead);
    if (head === Atomics.load(q, kRingTail)) return -1;
    const slot = head & (kRingSlots - 1);
    // Plain reads: a put may be writing this slot again if another get took it already; then the swap below
    // fails and the copy is dropped (a length read then may be anything, hence the bound).
    const meta = q[kRingMeta + slot]!;
    const at = kRingOffset + slot * kSlotBytes;
    const n = Math.min(meta & kLengthMask, kSlotBytes);
    for (let i = 0; i < n; i++) into[i] = bytes[at + i]!; // no view to allocate: items here are small
    if (Atomics.compareExchange(q, kRingHead, head, (head + 1) | 0) !== head) continue;
    if (Atomics.load(q, kRoomWaiters) > 0) wakeRoom(q); // the item counted against maxsize
    return meta;
  }
}

// ---- the hub's corrections -----------------------------------------------------------------------------

// They wake nobody: the hub wakes every waiter once it is done (hub.ts, wakeAll()).

/**
 * Hub: takes `n` items off the queue's count, that holders counted and will never send (a dead producer's
 * buffer); for a JoinableQueue that takes their tasks off too.
 */
export function uncount(q: Int32Array, n: number): void {
  Atomics.sub(q, kReserved, n);
}

/**
 * Hub: an item claimed by a holder that died before it was done with it is queued again as a new item; this
 * counts it. Its task is the old one (JoinableQueue): kReserved counts the new item first, then kDone the old
 * task, so the unfinished count never dips on the way (a join() could see it reach 0). The old task is counted
 * done only while more than `requeued` tasks are unfinished (the items queued again so far in this repair,
 * this one included, each need one): a taskDone() by another holder may have finished the old task already,
 * and then the new item carries a task of its own. So after queuing k items again, unfinished = max(before, k).
 */
export function recount(q: Int32Array, joinable: boolean, requeued: number): void {
  Atomics.add(q, kReserved, 1);
  if (joinable) finishOne(q, requeued);
}

/**
 * Hub: a dead holder's leased item that cannot be delivered again (it moved ports or buffers to the dead
 * thread): its task is counted done, so that join() does not wait for it forever (but for the `requeued`
 * tasks the same repair queued again).
 */
export function abandon(q: Int32Array, requeued: number): void {
  finishOne(q, requeued);
}

/** Counts one task done if more than `keep` are unfinished (atomically with that check). */
function finishOne(q: Int32Array, keep: number): void {
  for (;;) {
    const done = Atomics.load(q, kDone);
    if (diff(Atomics.load(q, kReserved), done) <= keep) return;
    if (Atomics.compareExchange(q, kDone, done, (done + 1) | 0) === done) return;
  }
}
