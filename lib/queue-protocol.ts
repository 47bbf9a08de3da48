// The wire between queue holders and the hub, and the layout of the shared counters. Both lib/queue.ts
// (every thread holding a queue handle) and lib/hub.ts (the hub worker) import this file only.
//
// A queue lives in a hub: one worker thread per creating thread that keeps the items nobody has taken yet.
// Each holder (a Queue object in some thread) has its own MessageChannel to the hub, because a port has one
// owner. The hub gives every item it receives the next *index* (0, 1, 2, ... in arrival order) and pushes
// the batches to the holders that asked to see that range (their window). A get takes an item by claiming the
// next index with one compare-and-swap on kClaimed: each index goes to exactly one get, and every get sees
// indexes in increasing order, so each producer's items come out in put order, whoever takes them.
//
// Indexes and counts live in Int32 cells and wrap around: compare them by `(a - b) | 0`, never directly.

import type { EncodedItems } from './wire.ts';

// Queue-wide counters (Int32Array over a SharedArrayBuffer, one per queue). Producers write kReserved on every
// put and consumers kClaimed on every get: each sits on its own 64-byte cache line, so that the two sides do not
// pull one line back and forth between cores.
/**
 * Items counted by put (a slot reserved, for a bounded queue), ever. It falls only when a put gives its slot
 * back (its value could not be captured) and when the hub takes off what a dead holder counted and never
 * sent. The queue's size is kReserved - kClaimed.
 */
export const kReserved = 0;
/** The next index to claim: how many items gets have taken. Notified after each claim on a bounded queue. */
export const kClaimed = 16;
/**
 * JoinableQueue: taskDone() calls so far. Unfinished tasks are kReserved - kDone, so a put counts its task in
 * the same atomic step that counts its item.
 */
export const kDone = 32;
/**
 * JoinableQueue: bumped and notified whenever the unfinished count may have reached 0 (the last taskDone(),
 * the hub taking lost items off). join() waits on this cell: it changes whichever of the two did it.
 */
export const kJoinWake = 33;
export const kQueueFields = 34;

// Per-holder counters (one Int32Array per handle, shared between the holder and the hub).
/** Items this holder counted in kReserved (at put time, before they leave the thread). */
export const kPutCount = 0;
/**
 * 1 while this holder changes kReserved and kPutCount, two cells no single atomic step can change together. A
 * thread can be terminated between the two (seen in about 1 kill in 500), so a holder that dies with this set
 * may have counted one item in one cell only; the hub then works out the difference (HubQueue.settle).
 */
export const kCounting = 1;
/**
 * 1: this holder is about to claim the item at kFetchIndex, one the hub only sends on Fetch (the hub keeps it);
 * 2: it claimed it and waits for the hub to send it (if the holder dies now, the hub queues it again); 0: neither.
 */
export const kFetching = 2;
export const kFetchIndex = 3;
/** Bumped (and notified) by the hub after it answered a synchronous request (getNowait). */
export const kReply = 4;
/** Attach messages this holder posted that the hub has not handled yet: holders the hub does not know of. */
export const kAttaching = 5;
export const kHolderFields = 6;

/**
 * A batch of items as it travels: V8-serialized bytes with decoding hints (wire.ts's EncodedItems), or (one
 * item that moves or holds handles) values.
 */
export interface Batch extends EncodedItems {
  /** One structured item (marshalled: may contain handle records) and what to transfer with it. */
  values?: unknown[];
  transfer?: unknown[];
}

export const Op = {
  // holder -> hub
  Put: 'put', // a batch of items, in put order
  Want: 'want', // push me the items with indexes in [from, until), or `width` past the claims if that is further
  Fetch: 'fetch', // I claimed `index` (one that moves things, so it is not pushed): send it to me alone
  Release: 'release', // I returned the item I fetched: you may drop it
  Attach: 'attach', // a new holder of this queue (its port travels in the message)
  Close: 'close', // this holder will send nothing more; its port closes next
  // hub -> holder
  Items: 'items', // items with indexes [base, base + n); `deferred`: only a placeholder, Fetch it when claimed
  // creating thread -> hub worker
  Create: 'create', // a new queue with its shared counters and its first holder
} as const;

export interface PutMessage { op: typeof Op.Put; batch: Batch }
/** `now`: a synchronous caller (getNowait) waits for kReply, bumped once everything asked for is posted. */
export interface WantMessage { op: typeof Op.Want; from: number; until: number; width: number; now?: boolean }
export interface FetchMessage { op: typeof Op.Fetch; index: number; now?: boolean }
export interface ReleaseMessage { op: typeof Op.Release }
export interface AttachMessage { op: typeof Op.Attach; port: MessagePortLike; counters: SharedArrayBuffer }
export interface CloseMessage { op: typeof Op.Close }
export type HolderMessage = PutMessage | WantMessage | FetchMessage | ReleaseMessage | AttachMessage | CloseMessage;

/** `fetched`: the answer to a Fetch (n 0: the hub does not have it, a bug). */
export interface ItemsMessage { op: typeof Op.Items; base: number; batch: Batch; deferred?: boolean; fetched?: boolean }
export type HubMessage = ItemsMessage;

export interface CreateMessage {
  op: typeof Op.Create;
  shared: SharedArrayBuffer;
  joinable: boolean;
  port: MessagePortLike;
  counters: SharedArrayBuffer;
}

/** Structural stand-in for MessagePort, to keep this file free of runtime imports. */
export interface MessagePortLike {
  postMessage(value: unknown, transfer?: readonly unknown[]): void;
}
