// Argument checks shared by every public call: bad input is a TypeError/RangeError naming the argument and
// the value received, thrown at the call.
import type { TransferListItem } from 'node:worker_threads';
import { describe } from './errors.ts';

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

export function checkOptionsObject(value: unknown, name = 'options'): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object') throw new TypeError(`${name} must be an object, got ${describe(value)}`);
  return value as Record<string, unknown>;
}

/** Checks `{ timeout, signal }` and returns them normalised. */
export function checkWaitOptions(value: unknown): { timeout: number; signal: AbortSignal | undefined } {
  const options = checkOptionsObject(value);
  return { timeout: checkTimeout(options.timeout), signal: checkSignal(options.signal) };
}

export function checkNonNegativeInteger(value: unknown, name: string): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a non-negative integer, got ${describe(value)}`);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${describe(value)}`);
  }
  return value;
}

export function checkTransferList(value: unknown, name = 'options.transfer'): TransferListItem[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of ArrayBuffers or MessagePorts, got ${describe(value)}`);
  return value as TransferListItem[];
}
