// The queue protocol: how holders of a queue and the hub work together. This file is its design document and
// the message half; the shared-memory half (every cell and every operation on it) is cells.ts.
//
// Who is who. A queue lives in the *hub*, one worker thread per process (hub.ts), started by the main thread
// when it first needs it; every thread that starts through a Process gets a port to it (hub-client.ts), so a
// queue made in any thread outlives that thread: it lives as long as some thread holds it. Each *holder* (a
// Queue object in some thread) has its own MessageChannel to the hub, because a port has one owner.
//
// The design in one paragraph. The hub gives every item it receives the next *index* (0, 1, 2, ... in the order
// the batches were posted: PutMessage.seq, hub.ts intake) and pushes the batches, still encoded, to the holders
// that asked to see that range (their *window*).
// A get takes an item by claiming the next index with one compare-and-swap on kClaimed, and only when its
// holder already has that item: each index goes to exactly one get, and every get sees indexes in increasing
// order, so each producer's items come out in put order, whoever takes them. Items that move things (ports,
// transferred buffers, handles) and very large ones are pushed as placeholders (*deferred*): the claimer
// fetches the real item, which the hub then moves to it.
//
// Sequences (H = a holder, B = the hub; "cells:" names the operation of cells.ts):
//
//   | step        | holder                                             | hub                                        |
//   |-------------|----------------------------------------------------|--------------------------------------------|
//   | create      | makes queue cells, holder cells; Create -> B       | a HubQueue with its first Holder           |
//   | put         | cells: reserve; encodes into its batch;            |                                            |
//   |             | the feeder posts Put{batch} (yield, 1,024 items,   | numbers the items, appends them to the log,|
//   |             | 1 MiB, flush(), handover, exit)                    | pushes them to windows that cover them     |
//   | put, alone  | an item that moves things, or holds host objects:  | the same, marked deferred (moved things)   |
//   |             | Put{batch of one, transfer} at once                |                                            |
//   | get         | waits until its window holds kClaimed; cells:      |                                            |
//   |             | claim (or claimLeased); decodes that item only     |                                            |
//   | want        | Want{from, until, width} when the claims near the  | extends the window, slides it past kClaimed|
//   |             | window's end, or a get finds nothing               | pushes what it now covers                  |
//   | fetch       | cells: claimPinned; Fetch{index}                   | sends the item (moving its ports), or says |
//   |             | ... Items{fetched}; cells: unpin; Release          | it lost it (a bug); trims on Release       |
//   | getNowait   | Want/Fetch{now}; Atomics.wait on kReply            | answers, then bumps kReply                 |
//   | taskDone    | cells: taskDone (acks this holder's oldest lease)  |                                            |
//   | handover    | flushes; kAttaching += 1; a new channel; Attach    | a new Holder; kAttaching -= 1              |
//   |             | {port, cells, ring} -> B; the other port travels   |                                            |
//   | lease ring  | a full ring: a new ring, Leases{ring} -> B         | reads leases from the new ring             |
//   | hand-off    | a put while every counted item is claimed writes a | (nothing: the item never reaches the hub)  |
//   |             | small item into the queue's ring and rings; any    |                                            |
//   |             | get takes from the ring first (cells.ts)           |                                            |
//   | exit        | flushes; Sync; waits (5 s at most) for kReply, so  | bumps kReply: everything the holder sent   |
//   |             | that a join() of the thread comes after its items  | before is numbered                         |
//   | close       | flushes; Close; closes its port                    | depart (below)                             |
//   | depart      | (closed, exited, terminated, or collected)         | takes off what it counted and never sent;  |
//   |             |                                                    | queues again what it claimed and was not   |
//   |             |                                                    | done with (a fetch; a JoinableQueue's      |
//   |             |                                                    | leases); forgets the queue with no holders;|
//   |             |                                                    | repairs the hand-off (cells.ts); wakes     |
//   |             |                                                    | every waiter (it may have died between a   |
//   |             |                                                    | step and its wake-up)                      |
//
// Cells, who writes and reads them, and the tests that guard each (hub.test = test/queue/hub.test.ts, which
// drives the hub's repairs directly; the others are test/*.test.ts):
//
//   | cell        | written by                 | read by              | guarded by                                    |
//   |-------------|----------------------------|----------------------|-----------------------------------------------|
//   | kReserved   | put (reserve), hub         | everyone (size)      | queue.test "FIFO per producer at maxsize ...";|
//   |             | (uncount, recount)         |                      | hub.test "uncount", "settle()"                |
//   | kClaimed    | get (claim)                | everyone             | queue.test "MPMC: 4 producers x 4 consumers"; |
//   |             |                            |                      | reliability/load.test per-consumer order      |
//   | kDone       | taskDone, hub (recount,    | join, taskDone, hub  | joinable-queue.test "a consumer terminated    |
//   |             | abandon)                   | (depart: unfinished- | between get() and taskDone()", "a taskDone()  |
//   |             |                            | Claims)              | on another handle ..."; hub.test leases       |
//   | kJoinWake   | whoever may end a join     | join                 | joinable-queue.test "join() in a worker ..."  |
//   | kPutCount   | its holder (reserve)       | hub (depart, settle) | hub.test "uncount"; joinable-queue.test "a    |
//   |             |                            |                      | producer that dies with items it never ..."   |
//   | kCounting   | its holder (reserve)       | hub (depart, settle) | queue.test "a producer terminated between its |
//   |             |                            |                      | two counting steps"; hub.test "settle()"      |
//   | kFetching,  | its holder (claimPinned,   | hub (trim, depart)   | hub.test "... died while fetching it"         |
//   | kFetchIndex | unpin)                     |                      |                                               |
//   | kReply      | hub                        | its holder           | queue.test "one handle alone: ... getNowait()"|
//   | kAttaching  | the sender of a handle     | hub (settle)         | hub.test "settle() ... once no one counts or  |
//   |             |                            |                      | attaches"                                     |
//   | kLeaseHead, | its holder (claimLeased,   | hub (trim, depart)   | hub.test "JoinableQueue: ..." (four cases);   |
//   | kLeaseTail, | taskDone)                  |                      | joinable-queue.test "taskDone() acknowledges  |
//   | kLeasing    |                            |                      | the oldest item this handle got"              |
//   | kSyncGetting| its holder (getSync)       | hub (push)           | blocking.test "two blocking consumers share"  |
//   | kBell       | hub (push to a getSync),   | getSync              | blocking.test "20,000 blocking round trips"   |
//   |             | producers (handOff)        |                      |                                               |
//   | kRoomWaiters| puts waiting for room      | claim, takeHandedOff | queue.test "when the put at the head ..."     |
//   | kRoom       | claim, takeHandedOff,      | puts waiting for room| queue.test "the value is captured when put is |
//   |             | unreserve, hub (uncount)   |                      | called" (a put waiting behind a ring item)    |
//   | kHolderIds, | newHolderCells(q)          | beginHandOff, hub    | hub.test "the hand-off: ..."                  |
//   | kHolderId   |                            | (unlockRingOf)       |                                               |
//   | kRingLock   | beginHandOff, endHandOff,  | beginHandOff         | hand-off.test "a put that finds another put   |
//   |             | hub (unlockRingOf)         |                      | writing ..."; hub.test "the hand-off: ..."    |
//   | kRingTail,  | endHandOff (tail, meta,    | size(), reserve,     | hand-off.test (six cases); queue.test,        |
//   | kRingMeta,  | slot bytes); takeHandedOff | gets (watch), puts   | reliability/load.test (per-producer order);   |
//   | kRingHead   | (head)                     |                      | reliability/faults.test                       |
//   | kRingWatch- | gets watching the ring     | endHandOff (rings    | hand-off.test "a thread terminated while its  |
//   | ers, kWatch-| (watchRing, unwatchRing),  | only if above 0)     | get watches the ring ..."; hub.test "a holder |
//   | es          | hub (depart: dropWatches)  |                      | that departs while its gets watch the ring"   |
//
// The hand-off, a small put straight to any get past the hub while the hub holds nothing, is argued in
// cells.ts ("The hand-off").
// settle(), argued. A holder stopped between the two steps of reserve() (kReserved, then kPutCount) leaves
// kReserved one higher than the counts the hub can see, for good. The hub knows this happened (kCounting was 1
// when the holder departed) but not in which direction, so it recomputes kReserved from first principles:
// kReserved = (sum of every holder's kPutCount, departed ones included) - (what the hub itself took off as
// never sent and added back as queued again; not its earlier settle() corrections, which restored this very
// identity, so that counting them would make every later settle() repeat them). That identity holds whenever no live holder is inside reserve()/unreserve() (or holds a
// hand-off's slot: beginHandOff) and no holder exists that the hub has not heard of (a handle in flight:
// kAttaching). The hub reads every holder's kCounting (none odd: none counting) and kPutCount, then kReserved,
// then checks that no holder is attaching and that no kCounting or kPutCount moved (kCounting is bumped at the
// start and at the end of each counting step, so one that began and ended in between is seen); if so, the
// snapshot was taken at a moment when the identity held (every cell it read was unchanged across the window),
// and the difference is the dead holder's half-step. Otherwise it tries again later (1, 2, 4 ... 100 ms);
// meanwhile the size is at most one too high per such death. Tested by hub.test.ts directly (and shown to
// fail when settle() does nothing).
import type { Batch } from '../wire/format.ts';

export const Op = {
  // holder -> hub
  Put: 'put', // a batch of items, in put order
  Want: 'want', // push me the items with indexes in [from, until), or `width` past the claims if that is further
  Fetch: 'fetch', // I claimed `index` (deferred, so it was not pushed): send it to me alone
  Release: 'release', // I have the item I fetched: you may drop it
  Attach: 'attach', // a new holder of this queue (its port travels in the message)
  Leases: 'leases', // my lease ring is full: read my leases from this new one
  Close: 'close', // this holder will send nothing more; its port closes next
  Sync: 'sync', // bump my kReply: you have everything I sent before this (a thread about to exit waits for it)
  Skip: 'skip', // the put numbered `seq` failed to post (the platform refused what it moves): do not wait for it
  // hub -> holder
  Items: 'items', // items with indexes [base, base + n); `deferred`: only a placeholder, Fetch it when claimed
  // a thread -> the hub, on the thread's own port to it
  Create: 'create', // a new queue with its cells and its first holder
  Adopt: 'adopt', // a port for a child thread: serve it as you serve me
} as const;

/** `transfer`: what the items move (ports, buffers): such a batch is deferred, and moved to its claimer. */
export interface PutMessage {
  op: typeof Op.Put;
  batch: Batch;
  transfer?: unknown[];
  /** Its place among the queue's puts in the order they were posted (cells.ts: kPostSeq), modulo 2^32. */
  seq?: number;
}
/** `now`: a synchronous caller (getNowait) waits for kReply, bumped once everything asked for is posted. */
export interface WantMessage {
  op: typeof Op.Want;
  from: number;
  until: number;
  width: number;
  now?: boolean;
}
export interface FetchMessage {
  op: typeof Op.Fetch;
  index: number;
  now?: boolean;
}
export interface ReleaseMessage {
  op: typeof Op.Release;
}
export interface AttachMessage {
  op: typeof Op.Attach;
  holder: HolderWire;
}
export interface LeasesMessage {
  op: typeof Op.Leases;
  ring: Int32Array;
}
export interface CloseMessage {
  op: typeof Op.Close;
}
export interface SyncMessage {
  op: typeof Op.Sync;
}
export interface SkipMessage {
  op: typeof Op.Skip;
  seq: number;
}
export type HolderMessage =
  | PutMessage
  | SkipMessage
  | WantMessage
  | FetchMessage
  | ReleaseMessage
  | AttachMessage
  | LeasesMessage
  | CloseMessage
  | SyncMessage;

/** `fetched`: the answer to a Fetch (n 0: the hub does not have it, a bug). */
export interface ItemsMessage {
  op: typeof Op.Items;
  base: number;
  batch: Batch | null;
  n: number;
  deferred?: boolean;
  fetched?: boolean;
}
export type HubMessage = ItemsMessage;

/** What the hub needs to serve one holder. */
export interface HolderWire {
  port: MessagePortLike;
  cells: Int32Array;
  /** JoinableQueue: the holder's lease ring. */
  ring: Int32Array | null;
}

export interface CreateMessage {
  op: typeof Op.Create;
  cells: Int32Array;
  joinable: boolean;
  holder: HolderWire;
}
export interface AdoptMessage {
  op: typeof Op.Adopt;
  port: MessagePortLike;
  /**
   * The threadId of the Process the port serves: its closing means that thread died, which the hub records for
   * the locks (sync/threads.ts) when nobody else can (the thread ran out of heap while its parent blocks).
   */
  thread?: number;
}
export type ClientMessage = CreateMessage | AdoptMessage;

/** Structural stand-in for MessagePort, to keep this file free of runtime imports. */
export interface MessagePortLike {
  postMessage(value: unknown, transfer?: readonly unknown[]): void;
}
