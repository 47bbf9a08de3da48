// What every synchronization primitive and shared value has in common: its state is a few cells of a
// SharedArrayBuffer, so sending one to another thread sends the buffer (shared, never copied) in a wire record,
// and the receiver wraps the same memory in an object of the same class. Nothing is owned by a thread, so
// there is nothing to hand over or undo when a message carrying one is posted or fails to post.
import { bug, describe, ErrorCode, ProcessError } from '../errors.ts';
import { kAbort, kCommit, kMarshal, registerHandle, WIRE_TAG, type Handle, type WireHandle } from '../handles.ts';
import { adoptDeadThreads, deadThreads } from './threads.ts';

/** The wire record of a primitive: its kind, its state, and whatever else its class needs to rebuild it. */
export interface PrimitiveRecord extends WireHandle {
  state: Record<string, unknown>;
  threads: SharedArrayBuffer;
}

// The public constructors take Python's arguments only; an object over state that arrived from another thread
// is made by handing the state over in this slot for the constructor to take.
let adopting: Record<string, unknown> | undefined;

/** For a constructor: the state being adopted, if this construction rebuilds a primitive from the wire. */
export function takeAdopted<S extends Record<string, unknown>>(): S | undefined {
  const state = adopting as S | undefined;
  adopting = undefined;
  return state;
}

/** `count` zeroed Int32 cells in shared memory. */
export function newCells(count: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(count * Int32Array.BYTES_PER_ELEMENT));
}

/** Implemented by each primitive: its state for the wire (cells, nested primitives' states, constants). */
export const kState: unique symbol = Symbol('mpthreads.sync.state');
/** Implemented by each primitive: the kind its record is revived as (registerPrimitive). */
export const kKind: unique symbol = Symbol('mpthreads.sync.kind');

export abstract class Primitive implements Handle {
  /** The kind of primitive, as registered (a subclass of Lock still travels as a Lock). */
  abstract get [kKind](): string;
  /** The state that rebuilds this primitive in another thread: shared buffers and plain constants only. */
  abstract [kState](): Record<string, unknown>;

  [kMarshal](): WireHandle {
    const record: PrimitiveRecord = {
      [WIRE_TAG]: this[kKind],
      state: this[kState](),
      threads: deadThreads(),
    };
    markReachable(record.state);
    return record;
  }
  [kCommit](): void {}
  [kAbort](): void {}
}

/**
 * The shared buffers of primitives another thread may hold: sent from this thread (its own and its nested
 * primitives' cells), or received. A blocking wait for ever on cells no other thread can reach would wait for
 * itself: such waits throw ERR_DEADLOCK instead, as a queue's do.
 */
const reachable = new WeakSet<SharedArrayBuffer>();

/** Marks every shared buffer in a primitive's state (nested states included) as reachable from other threads. */
export function markReachable(state: unknown): void {
  if (state instanceof SharedArrayBuffer) reachable.add(state);
  else if (typeof state === 'object' && state !== null) for (const value of Object.values(state)) markReachable(value);
}

/**
 * Throws ERR_DEADLOCK for a blocking wait for ever (`what`, on a primitive of `kind`) on `cells` that no other
 * thread can reach: nothing could end it.
 */
export function checkReachable(cells: Int32Array, kind: string, what: string): void {
  if (reachable.has(cells.buffer as SharedArrayBuffer)) return;
  throw new ProcessError(
    `${what} on a${/^[AEIOU]/.test(kind) ? 'n' : ''} ${kind} that no other thread holds would block forever: pass it to a Process first, or give a timeout`,
    ErrorCode.Deadlock,
  );
}

/**
 * For waitUntil's `lonely`: while no other thread can reach `cells`, the ERR_DEADLOCK that ends `what` (a wait
 * without a timeout, on a primitive of `kind`) once this thread has nothing left to do.
 */
export function lonelyWait(cells: Int32Array, kind: string, what: string): () => ProcessError | undefined {
  return () =>
    reachable.has(cells.buffer as SharedArrayBuffer)
      ? undefined
      : new ProcessError(
          `${what} on a${/^[AEIOU]/.test(kind) ? 'n' : ''} ${kind} that no other thread holds can never end: this thread has nothing left to do that could (pass it to a Process first, or give a timeout)`,
          ErrorCode.Deadlock,
        );
}

const makers = new Map<string, () => object>();

/** Says how a primitive class is rebuilt from its record: `make()` calls its constructor, which adopts. */
export function registerPrimitive(kind: string, make: () => object): void {
  makers.set(kind, make);
  registerHandle(kind, (wire) => {
    const record = wire as PrimitiveRecord;
    adoptDeadThreads(record.threads);
    return adoptState(record.state, make);
  });
}

/** Runs `make` (a constructor call) so that it adopts `state` rather than making new state. */
function adoptState<T>(state: Record<string, unknown>, make: () => T): T {
  markReachable(state);
  adopting = state;
  try {
    return make();
  } finally {
    adopting = undefined;
  }
}

/** A primitive held by another (a Condition's lock), as its holder's state carries it. */
export interface NestedState {
  kind: string;
  state: Record<string, unknown>;
}

export function nestedState(primitive: Primitive): NestedState {
  return { kind: primitive[kKind], state: primitive[kState]() };
}

export function reviveNested<T>(nested: NestedState): T {
  const make = makers.get(nested.kind);
  if (make === undefined) throw bug(`no primitive of kind ${describe(nested.kind)}`);
  return adoptState(nested.state, make) as T;
}

/** Checks a count argument: a safe integer, at least `min`. */
export function checkCount(value: unknown, name: string, min: number): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be an integer, got ${describe(value)}`);
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`${name} must be an integer of at least ${min}, got ${describe(value)}`);
  }
  return value;
}
