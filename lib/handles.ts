// Handles (Connection, Queue, ...) travel inside ordinary values: `Process` args and messages. Structured
// clone would turn a handle into an empty plain object, so before posting, `marshal` replaces each handle
// found in arrays and plain objects with a wire record (ports go in the transfer list) and, after the post
// succeeded, `commit` tells each handle it was sent. `revive` turns wire records back into handles.
//
// Invariants:
//   A handle is told it moved (`commit`) only after the post carrying it succeeded, so a failed post
//   (DataCloneError) leaves every handle usable where it was.
//   Values without handles are posted as they are: no copy, no envelope.

import type { TransferListItem } from 'node:worker_threads';

/** Implemented by every class whose instances can travel between threads. */
export interface Handle {
  /** Describes the handle for the wire; `transfer` collects the ports to move. */
  [kMarshal](transfer: TransferListItem[]): WireHandle;
  /** The post carrying the record succeeded; `destination` describes where it went. */
  [kCommit](destination: string): void;
}

export const kMarshal: unique symbol = Symbol('mpthreads.marshal');
export const kCommit: unique symbol = Symbol('mpthreads.commit');

/** The key that marks a wire record; a string, since structured clone drops symbol keys. */
export const WIRE_TAG = '\u0000mpthreads.handle';
/** The key that marks a message whose value holds wire records and must be revived. */
export const ENVELOPE_TAG = '\u0000mpthreads.envelope';

export interface WireHandle {
  [WIRE_TAG]: string;
  [field: string]: unknown;
}

type Reviver = (wire: WireHandle) => unknown;
const revivers = new Map<string, Reviver>();

/** Each handle class registers how to rebuild itself from its wire record. */
export function registerHandle(kind: string, reviver: Reviver): void {
  revivers.set(kind, reviver);
}

export function isHandle(value: unknown): value is Handle {
  return typeof value === 'object' && value !== null && kMarshal in value;
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

const kScanDepth = 16;

/**
 * The hot-path check before `marshal`: true when `value` may hold a handle. It allocates nothing; a
 * structure deeper than it looks (or cyclic) answers true and gets the full walk.
 */
export function mayHoldHandles(value: unknown, depth = 0): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (kMarshal in value) return true;
  if (depth === kScanDepth) return true;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const child = value[i];
      if (typeof child === 'object' && child !== null && mayHoldHandles(child, depth + 1)) return true;
    }
    return false;
  }
  if (!isPlainObject(value)) return false;
  for (const key in value) {
    const child = (value as Record<string, unknown>)[key];
    if (typeof child === 'object' && child !== null && mayHoldHandles(child, depth + 1)) return true;
  }
  return false;
}

export interface Marshalled {
  value: unknown;
  transfer: TransferListItem[];
  handles: Handle[];
}

/**
 * Replaces the handles inside `value` (at the top level, or nested in arrays and plain objects) with wire
 * records. Containers that hold no handle are kept as they are; those that do are shallow-copied.
 */
export function marshal(value: unknown, transfer: TransferListItem[] = []): Marshalled {
  const handles: Handle[] = [];
  const records = new Map<Handle, WireHandle>();
  const seen = new Map<object, unknown>();
  const visit = (v: unknown): unknown => {
    if (typeof v !== 'object' || v === null) return v;
    if (isHandle(v)) {
      let record = records.get(v);
      if (record === undefined) {
        record = v[kMarshal](transfer);
        records.set(v, record);
        handles.push(v);
      }
      return record;
    }
    const isArray = Array.isArray(v);
    if (!isArray && !isPlainObject(v)) return v;
    if (seen.has(v)) return seen.get(v);
    seen.set(v, v);
    let copy: Record<string | number, unknown> | unknown[] | undefined;
    const keys = isArray ? undefined : Object.keys(v);
    const n = isArray ? (v as unknown[]).length : keys!.length;
    for (let i = 0; i < n; i++) {
      const key = isArray ? i : keys![i]!;
      const child = (v as Record<string | number, unknown>)[key];
      if (typeof child !== 'object' || child === null) continue;
      const replaced = visit(child);
      if (replaced !== child) {
        if (copy === undefined) {
          copy = isArray ? (v as unknown[]).slice() : { ...(v as Record<string, unknown>) };
          seen.set(v, copy);
        }
        (copy as Record<string | number, unknown>)[key] = replaced;
      }
    }
    return copy ?? v;
  };
  return { value: visit(value), transfer, handles };
}

/** Tells every marshalled handle that the post carrying it succeeded. */
export function commit(handles: Handle[], destination: string): void {
  for (const handle of handles) handle[kCommit](destination);
}

/** The kinds of the wire records inside a value that `marshal` produced (a connection's inbox included). */
export function handleKinds(value: unknown, kinds = new Set<string>(), seen = new Set<object>()): Set<string> {
  if (typeof value !== 'object' || value === null || seen.has(value)) return kinds;
  seen.add(value);
  const tag = (value as Record<string, unknown>)[WIRE_TAG];
  if (typeof tag === 'string') kinds.add(tag);
  if (Array.isArray(value)) for (const child of value) handleKinds(child, kinds, seen);
  else if (isPlainObject(value)) for (const key of Object.keys(value)) handleKinds((value as Record<string, unknown>)[key], kinds, seen);
  return kinds;
}

/** Rebuilds the handles inside a value that `marshal` produced. */
export function revive(value: unknown, seen = new Map<object, unknown>()): unknown {
  if (typeof value !== 'object' || value === null) return value;
  // A handle that appears twice in one value was marshalled to one record (structured clone keeps that
  // identity): it must come back as one handle, not two objects sharing a port.
  if (seen.has(value)) return seen.get(value);
  const tag = (value as Record<string, unknown>)[WIRE_TAG];
  if (typeof tag === 'string') {
    const reviver = revivers.get(tag);
    if (reviver === undefined) throw new Error(`mpthreads: no reviver registered for handle kind ${tag}`);
    const handle = reviver(value as WireHandle);
    seen.set(value, handle);
    return handle;
  }
  seen.set(value, value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (i in value) value[i] = revive(value[i], seen); // keep holes
  } else if (isPlainObject(value)) {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) record[key] = revive(record[key], seen);
  }
  return value;
}

/** Wraps a marshalled value for a message stream, so the receiver knows to revive it. */
export function envelope(value: unknown): Record<string, unknown> {
  return { [ENVELOPE_TAG]: 1, value };
}

/** Returns the value a message carries, reviving handles when it came in an envelope. */
export function unwrap(message: unknown): unknown {
  if (typeof message === 'object' && message !== null && (message as Record<string, unknown>)[ENVELOPE_TAG] === 1) {
    return revive((message as { value: unknown }).value);
  }
  return message;
}
