// The wire between queue holders and the hub, and the layout of the shared counters. Both lib/queue.ts
// (every thread holding a queue handle) and lib/hub.ts (the hub worker) import this file only.
//
// A queue lives in a hub: one worker thread per creating thread that keeps the items nobody has taken yet.
// Each holder (a Queue object in some thread) has its own MessageChannel to the hub, because a port has one
// owner. Producers post batches; consumers post how many items they want and the hub leases them whole
// batches; a holder's per-handle counters in shared memory let the hub take back what a dead holder had
// put-but-not-sent (to fix the size) or leased-but-not-taken (to give to others).

// Queue-wide counters (Int32Array over a SharedArrayBuffer, one per queue).
/** Items put (slot reserved) and not yet returned by a get, anywhere. Bounded puts reserve by CAS on it. */
export const kSize = 0;
/** JoinableQueue: items put and not yet marked done by taskDone(). */
export const kUnfinished = 1;
/** 1 while the hub keeps a waiting consumer waiting for items other holders leased and have not taken. */
export const kStarving = 2;
export const kQueueFields = 3;

// Per-holder counters (one Int32Array per handle, shared between the holder and the hub).
/** Items this holder has put (counted at put time, before they leave the thread). */
export const kPutCount = 0;
/** Sequence number of the next leased item this holder will take: everything below is taken or given back. */
export const kTakenSeq = 1;
/** Bumped (and notified) by the hub after it answered a synchronous want (getNowait). */
export const kReply = 2;
export const kHolderFields = 3;

/** A batch of items as it travels: V8-serialized bytes (`encoded`) or, for items that carry transferables, values. */
export interface Batch {
  n: number;
  /** V8 wire bytes of an array of `n` items (see wire.ts), plus side-encoded items. */
  bytes?: ArrayBuffer;
  side?: (number | ArrayBuffer)[] | null;
  /** Already-structured values (marshalled: may contain handle records) and what to transfer with them. */
  values?: unknown[];
  transfer?: unknown[];
  /** Hub bookkeeping: arrival rank of the batch the items came from, and their offset in it. */
  order?: number;
  pos?: number;
}

export const Op = {
  // holder -> hub
  Put: 'put', // items, in order
  Want: 'want', // this holder now waits for `n` more items in total
  GiveBack: 'giveBack', // leased items returned unconsumed, seq [from, from + n)
  Attach: 'attach', // a new holder of queue `id` (its port travels in the message)
  Close: 'close', // this holder will send nothing more; its port closes next
  // hub -> holder
  Items: 'items', // a lease of items starting at `seq`
  Recall: 'recall', // someone else is starving: give back leased items you have not taken
  // creating thread -> hub worker
  Create: 'create', // a new queue with its shared counters and its first holder
} as const;

export interface PutMessage { op: typeof Op.Put; batch: Batch }
/** `n` is the holder's total need now (not an increment). `now`: answer at once, even with nothing. */
export interface WantMessage { op: typeof Op.Want; n: number; now?: boolean }
export interface GiveBackMessage { op: typeof Op.GiveBack; from: number; batch: Batch }
export interface AttachMessage { op: typeof Op.Attach; port: MessagePortLike; counters: SharedArrayBuffer }
export interface CloseMessage { op: typeof Op.Close }
export type HolderMessage = PutMessage | WantMessage | GiveBackMessage | AttachMessage | CloseMessage;

export interface ItemsMessage { op: typeof Op.Items; seq: number; batch: Batch }
export interface RecallMessage { op: typeof Op.Recall }
export type HubMessage = ItemsMessage | RecallMessage;

export interface CreateMessage {
  op: typeof Op.Create;
  id: number;
  shared: SharedArrayBuffer;
  maxsize: number;
  port: MessagePortLike;
  counters: SharedArrayBuffer;
}

/** Structural stand-in for MessagePort, to keep this file free of runtime imports. */
export interface MessagePortLike {
  postMessage(value: unknown, transfer?: readonly unknown[]): void;
}
