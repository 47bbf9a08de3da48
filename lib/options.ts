// Argument checks shared by every public call: bad input is a TypeError/RangeError naming the argument and
// the value received, thrown at the call.
import type { FileHandle } from 'node:fs/promises';
import { types } from 'node:util';
import { MessagePort } from 'node:worker_threads';
import { describe } from './errors.ts';

/**
 * What a transfer list may hold: what Node moves rather than copies (an ArrayBuffer, not a view of one: list
 * `view.buffer`). Declared here, not taken from @types/node, because the published declarations must compile
 * against every @types/node a user may have: it renamed its type (TransferListItem up to 25, Transferable
 * from 26), and from 25 `postMessage` is overloaded, so a type derived from its parameters is `never` there.
 */
export type TransferItem = ArrayBuffer | MessagePort | FileHandle | ReadableStream | WritableStream | TransformStream;

/** Options accepted by every blocking call. */
export interface WaitOptions {
  /** Milliseconds to wait; `Infinity` or omitted waits forever. @default Infinity */
  timeout?: number;
  /** Aborting rejects the wait with the signal's reason. */
  signal?: AbortSignal;
}

/** Returns the timeout in ms (`Infinity` when omitted); throws TypeError/RangeError naming `name`. */
export function checkTimeout(value: unknown, name = 'options.timeout'): number {
  if (value === undefined) return Infinity;
  if (typeof value !== 'number') {
    throw new TypeError(`${name} must be a number of milliseconds, got ${describe(value)}`);
  }
  if (Number.isNaN(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative number of milliseconds or Infinity, got ${describe(value)}`);
  }
  return value;
}

export function checkSignal(value: unknown, name = 'options.signal'): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (!(value instanceof AbortSignal)) throw new TypeError(`${name} must be an AbortSignal, got ${describe(value)}`);
  return value;
}

/**
 * Checks an options object: undefined (no options) or an object whose every own key is one of `known`. An
 * option this call does not take is a TypeError naming it: a misspelt or meaningless option must not be
 * silently ignored (`new SimpleQueue({ maxsize: 3 })` is not a bounded queue).
 */
export function checkOptions(value: unknown, name: string, known: readonly string[]): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object')
    throw new TypeError(`${name} must be an object, got ${describe(value)}`);
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      const takes = known.length === 0 ? 'takes no options' : `takes ${known.map((k) => `"${k}"`).join(', ')}`;
      throw new TypeError(`${name}: unknown option "${key}" (${takes})`);
    }
  }
  return value as Record<string, unknown>;
}

const waitKeys = ['timeout', 'signal'] as const;

/** Checks `{ timeout, signal }` and returns them normalised. */
export function checkWaitOptions(
  value: unknown,
  name = 'options',
): { timeout: number; signal: AbortSignal | undefined } {
  const options = checkOptions(value, name, waitKeys);
  return {
    timeout: checkTimeout(options.timeout, `${name}.timeout`),
    signal: checkSignal(options.signal, `${name}.signal`),
  };
}

export function checkNonNegativeInteger(value: unknown, name: string): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a non-negative integer, got ${describe(value)}`);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${describe(value)}`);
  }
  return value;
}

export function checkTransferList(value: unknown, name = 'options.transfer'): TransferItem[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value))
    throw new TypeError(`${name} must be an array of ArrayBuffers or MessagePorts, got ${describe(value)}`);
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i];
    if (!isTransferable(item)) {
      const hint = ArrayBuffer.isView(item) ? ' (list its .buffer, the ArrayBuffer it views)' : '';
      throw new TypeError(
        `${name}[${i}] must be an ArrayBuffer, a MessagePort, a FileHandle or a web stream, got ${describe(item)}${hint}`,
      );
    }
  }
  return value as TransferItem[];
}

/** What the platform can move (Node's transferable kinds); anything else it refuses with an untyped error. */
function isTransferable(item: unknown): boolean {
  if (typeof item !== 'object' || item === null) return false;
  // isArrayBuffer: one from another realm (a vm context) too; it excludes a SharedArrayBuffer, which cannot move.
  if (types.isArrayBuffer(item) || item instanceof MessagePort) return true;
  // The others by their class's name: from another realm, or a FileHandle (node:fs/promises, not loaded here).
  const name = (item as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && kTransferableClasses.has(name);
}

const kTransferableClasses = new Set([
  'MessagePort',
  'ReadableStream',
  'WritableStream',
  'TransformStream',
  'FileHandle',
]);
