// Everything that travels between a Process and its worker besides user data, in one place.
// The worker is started with a BootData in workerData; it talks back on its parentPort with
// WorkerMessages, tagged so that a user's own parentPort messages are never mistaken for ours.
import type { MessagePort } from 'node:worker_threads';
import type { SerializedError } from './errors.ts';
import type { ThreadContext } from './context.ts';
import type { Batch } from './wire/format.ts';

/** The key of workerData that carries BootData, and the tag of our messages on parentPort. */
export const PROTOCOL_TAG = 'mpthreads';

export const Kind = {
  // worker -> parent
  Error: 'error',
} as const;

/** Read by workers/bootstrap.mjs: plain data, no handles. */
export interface BootData {
  /** URL of the worker runtime to import (lib/worker-main.ts under tsx, dist/lib/worker-main.js built). */
  runtime: string;
  /** The entry `runtime` registers when it loads (see entries.ts), called with this BootData. */
  entry: string;
  /** Register tsx in the worker before importing anything TypeScript. */
  tsx: boolean;
  /** URL of the task module. */
  module: string;
  /** URL of the task module compiled to JavaScript (see compile.ts), imported instead of `module`. */
  compiled?: string;
  /**
   * The compilation is still running: wait for a message with the rest (`runtime` and `compiled`, or
   * `tsx: true` when it failed) before importing anything.
   */
  pending?: boolean;
  /** Name of the export to call. */
  target: string;
  /** The args, captured as one value (handles.ts: capture); decoded once the task module is loaded. */
  args: Batch | null;
  /** This thread's port to the queue hub (queue/hub-client.ts); for the hub itself, the main thread's. */
  hub?: MessagePort;
  context: ThreadContext;
}

/** The target threw (or the module could not be loaded); the worker then exits with code 1. */
export interface ErrorMessage {
  [PROTOCOL_TAG]: typeof Kind.Error;
  error: SerializedError;
}

export type WorkerMessage = ErrorMessage;

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return typeof value === 'object' && value !== null && PROTOCOL_TAG in value;
}
