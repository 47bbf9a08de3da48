// Everything that travels between a Process and its worker besides user data: the BootData a worker starts
// with, and the messages of workers/messages.mjs (the vocabulary workers/bootstrap.mjs shares), typed.
import type { MessagePort } from 'node:worker_threads';
import type { SerializedError } from './errors.ts';
import type { ThreadContext } from './context.ts';
import type { Batch } from './wire/format.ts';

import { Kind, PROTOCOL_TAG } from '../workers/messages.mjs';

export { Kind, PROTOCOL_TAG };

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
  /**
   * With `pending`: set to 1 when the parent blocks its thread (a ...Sync call) before it delivered the compiled
   * module; the worker then registers tsx itself rather than wait for a message that cannot come.
   */
  blocked?: SharedArrayBuffer;
  /**
   * With `pending`: a count the parent's event loop moves on while it turns. When it stands still, the parent is
   * busy in synchronous code and cannot deliver the compiled module either: the worker registers tsx itself.
   */
  heartbeat?: SharedArrayBuffer;
  /** Name of the export to call. */
  target: string;
  /** The args, captured as one value (handles.ts: capture); decoded once the task module is loaded. */
  args: Batch | null;
  /** This thread's port to the queue hub (queue/hub-client.ts); for the hub itself, the main thread's. */
  hub?: MessagePort;
  /** For the hub itself: a cell it sets to 1 (and notifies) once it serves (queue/hub-client.ts: hubStarting). */
  hubReady?: Int32Array;
  /** The process's table of dead threads (sync/threads.ts), shared by every thread the library starts. */
  threads?: SharedArrayBuffer;
  context: ThreadContext;
}

/** Parent -> a spare worker on standby: its BootData. */
export interface BootMessage {
  [PROTOCOL_TAG]: typeof Kind.Boot;
  boot: BootData;
}
/** Parent -> a worker started `pending`: the compiled module's URLs, or `tsx: true` when compiling failed. */
export interface CompiledMessage {
  [PROTOCOL_TAG]: typeof Kind.Compiled;
  fields: Partial<BootData>;
}
export type ParentMessage = BootMessage | CompiledMessage;

/** Worker -> parent: the target threw (or the module could not be loaded); the worker then exits with code 1. */
export interface ErrorMessage {
  [PROTOCOL_TAG]: typeof Kind.Error;
  error: SerializedError;
}
/** Worker -> parent, from its 'exit' event: something for the parent to settle (context.ts: noteToParent). */
export interface NoteMessage {
  [PROTOCOL_TAG]: typeof Kind.Note;
  topic: string;
  data: unknown;
}
export type WorkerMessage = ErrorMessage | NoteMessage;

/** True for our messages on a worker's parentPort (the user's own carry no PROTOCOL_TAG). */
export function isProtocolMessage(value: unknown): value is WorkerMessage {
  return typeof value === 'object' && value !== null && Object.hasOwn(value, PROTOCOL_TAG);
}
