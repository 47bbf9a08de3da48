// Handles (Connection, Queue, ...) travel inside ordinary values: `Process` args, messages, queue items. The
// encoder (wire/encode.ts) meets them in its one walk of the value and writes a reference to a carry slot;
// once the value is captured, each handle describes itself for the wire (a record whose ports move with the
// message), and after the post succeeded it is told so (commit). The decoder revives records into handles.
//
// Invariants:
//   A handle is marshalled only after the whole value was captured, so a value that fails to capture
//   (DataCloneError) leaves every handle untouched.
//   A handle is told it moved (`commit`) only after the post carrying it succeeded; a failed post `abort`s
//   it, and leaves it usable where it was.
import type { TransferListItem } from 'node:worker_threads';
import { bug } from './errors.ts';
import { setHandleReviver } from './wire/decode.ts';
import { Encoder, type LoneItem } from './wire/encode.ts';
import { Carrying, type Batch } from './wire/format.ts';

export const kMarshal: unique symbol = Symbol.for('mpthreads.marshal');
export const kCommit: unique symbol = Symbol.for('mpthreads.commit');
export const kAbort: unique symbol = Symbol.for('mpthreads.abort');

/** Implemented by every class whose instances can travel between threads. */
export interface Handle {
  /** Describes the handle for the wire; `transfer` collects the ports to move. */
  [kMarshal](transfer: unknown[]): WireHandle;
  /**
   * The post carrying the record succeeded; `destination` describes where it went, and `thread` is the
   * threadId of the thread that will take it, when that is known (a Process's args).
   */
  [kCommit](destination: string, thread?: number): void;
  /** The post carrying the record failed: undo what kMarshal did. */
  [kAbort](): void;
}

/** The key that marks a wire record. */
export const WIRE_TAG = '\u0000mpthreads.handle';

export interface WireHandle {
  [WIRE_TAG]: string;
  [field: string]: unknown;
}

type Reviver = (wire: WireHandle) => unknown;
// Per thread on globalThis: every copy of the library in a thread revives every kind.
const kRevivers = Symbol.for('mpthreads.revivers');
const revivers: Map<string, Reviver> = ((globalThis as Record<symbol, unknown>)[kRevivers] ??= new Map()) as Map<
  string,
  Reviver
>;

/** Each handle class registers how to rebuild itself from its wire record. */
export function registerHandle(kind: string, reviver: Reviver): void {
  revivers.set(kind, reviver);
}

export function isHandle(value: unknown): value is Handle {
  return typeof value === 'object' && value !== null && kMarshal in value;
}

export function reviveRecord(record: unknown): unknown {
  const kind = (record as WireHandle | undefined)?.[WIRE_TAG];
  const reviver = typeof kind === 'string' ? revivers.get(kind) : undefined;
  if (reviver === undefined) throw bug(`no reviver registered for handle kind ${String(kind)}`);
  return reviver(record as WireHandle);
}
setHandleReviver(reviveRecord);

/** A value captured for one message: post `batch` with `transfer`, then commit() (or abort() if the post fails). */
export interface Captured {
  batch: Batch;
  transfer: unknown[];
  handles: Handle[];
}

/** Tells every handle of a captured value that the post carrying it succeeded. */
export function commit(captured: { handles: Handle[] }, destination: string, thread?: number): void {
  for (const handle of captured.handles) handle[kCommit](destination, thread);
}

/** The post of a captured value failed: every handle in it stays where it was. */
export function abort(captured: { handles: Handle[] }): void {
  for (const handle of captured.handles) handle[kAbort]();
}

const loneEncoder = new Encoder({ isHandle, shapes: false });
let encoding = false;
const serverEncoder = new Encoder({ isHandle, shapes: false, inlineBuffers: true });
let encodingForServer = false;

/**
 * Captures `value` as an item of its own, with its keys written out (so it can join any batch later): one
 * walk, each property read once. Handles inside are found, not yet marshalled. Throws DataCloneError (and
 * touches nothing) if the value cannot be copied.
 */
export function captureItem(value: unknown, transfer?: readonly unknown[]): LoneItem {
  // Re-entrance (a registered class's serialize() sends something) gets an encoder of its own.
  const encoder = encoding ? new Encoder({ isHandle, shapes: false }) : loneEncoder;
  encoding = true;
  try {
    encoder.put(value, { transfer });
    return encoder.takeLast(transfer);
  } finally {
    if (encoder === loneEncoder) encoding = false;
  }
}

/** captureItem() for an item that leaves the process (a Redis queue's): buffers of any size go in its bytes. */
export function captureForServer(value: unknown): LoneItem {
  const encoder = encodingForServer ? new Encoder({ isHandle, shapes: false, inlineBuffers: true }) : serverEncoder;
  encodingForServer = true;
  try {
    encoder.put(value);
    return encoder.takeLast(undefined);
  } finally {
    if (encoder === serverEncoder) encodingForServer = false;
  }
}

/**
 * captureItem() for an item that waits before it is posted (a put on a full queue): its transfer list moves
 * now, at the call, as postMessage's would. The buffers and ports listed are detached here and the item
 * carries their new counterparts, so a change the caller makes to them meanwhile changes nothing that arrives.
 */
export function captureToWait(value: unknown, transfer: readonly unknown[] | undefined): LoneItem {
  const lone = captureItem(value, transfer);
  if (transfer === undefined || transfer.length === 0) return lone;
  const moved = structuredClone({ carry: lone.batch.carry, transfer }, { transfer: transfer as TransferListItem[] });
  lone.batch.carry = moved.carry;
  lone.transfer = [lone.batch.bytes, ...moved.transfer];
  return lone;
}

/** Where a captured item's bytes can go straight from the encoder (the queues' hand-off ring). */
export interface ItemSink {
  /** Takes the item just put into `encoder` (it carries nothing) with encoder.moveLastInto(), or leaves it. */
  take(encoder: Encoder): boolean;
}

/**
 * captureItem(), but an item that carries nothing is first offered to `sink`, sparing the copy into an
 * ArrayBuffer of its own: true when the sink took it, otherwise the captured item.
 */
export function captureOrSink(value: unknown, sink: ItemSink): LoneItem | true {
  const encoder = encoding ? new Encoder({ isHandle, shapes: false }) : loneEncoder;
  encoding = true;
  try {
    if (encoder.put(value) === Carrying.Nothing && sink.take(encoder)) return true;
    return encoder.takeLast(undefined);
  } finally {
    if (encoder === loneEncoder) encoding = false;
  }
}

/**
 * Captures `value` for a message of its own (a send, a Process's args): as captureItem(), then the handles
 * inside are marshalled into the carry, their ports added to the transfer list.
 */
export function capture(value: unknown, transfer?: readonly unknown[]): Captured {
  const lone = captureItem(value, transfer);
  return marshalHandles(lone.batch, lone.transfer, lone.handles as Handle[], lone.handleSlots);
}

/** Fills the carry slots of `handles` with their wire records (ports join `transfer`). */
export function marshalHandles(batch: Batch, transfer: unknown[], handles: Handle[], slots: number[]): Captured {
  const done: Handle[] = [];
  try {
    for (let i = 0; i < handles.length; i++) {
      batch.carry![0]![slots[i]!] = handles[i]![kMarshal](transfer);
      done.push(handles[i]!);
    }
  } catch (error) {
    for (const handle of done) handle[kAbort]();
    throw error;
  }
  return { batch, transfer, handles };
}
