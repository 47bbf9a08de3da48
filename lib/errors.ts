// The error tree. Every error the library raises on purpose is a ProcessError with a permanent `code`;
// messages may change, codes never do. "Nothing yet" (Empty, TimeoutError) is kept apart from
// "never again" (EOFError, ClosedError), as crossbeam keeps Empty apart from Disconnected.

/**
 * Every `code` a ProcessError can carry: the closed vocabulary, named once. The README's error table lists
 * them all. Codes never change; messages may.
 */
export const ErrorCode = {
  // "nothing yet" and "never again" (SPEC.md: the six error classes)
  Empty: 'Empty',
  Full: 'Full',
  EOFError: 'EOFError',
  ClosedError: 'ClosedError',
  BufferTooShort: 'BufferTooShort',
  TimeoutError: 'TimeoutError',
  // misuse of a Process
  ProcessStarted: 'ERR_PROCESS_STARTED',
  ProcessNotStarted: 'ERR_PROCESS_NOT_STARTED',
  ProcessRunning: 'ERR_PROCESS_RUNNING',
  ProcessClosed: 'ERR_PROCESS_CLOSED',
  ModuleLoad: 'ERR_MODULE_LOAD',
  TargetNotFound: 'ERR_TARGET_NOT_FOUND',
  StartWhileImporting: 'ERR_START_WHILE_IMPORTING',
  // misuse of a Connection
  ConnectionReadOnly: 'ERR_CONNECTION_READ_ONLY',
  ConnectionWriteOnly: 'ERR_CONNECTION_WRITE_ONLY',
  ConnectionBusy: 'ERR_CONNECTION_BUSY',
  ConnectionLoop: 'ERR_CONNECTION_LOOP',
  NotBytes: 'ERR_NOT_BYTES',
  // misuse of a queue
  TaskDoneTooMany: 'ERR_TASK_DONE_TOO_MANY',
  QueueBusy: 'ERR_QUEUE_BUSY',
  // a Pool
  WorkerLostError: 'WorkerLostError',
  PoolInitializer: 'ERR_POOL_INITIALIZER',
  NotReady: 'ERR_NOT_READY',
  // synchronization
  BrokenBarrierError: 'BrokenBarrierError',
  LockNotHeld: 'ERR_LOCK_NOT_HELD',
  ReleasedTooMany: 'ERR_RELEASED_TOO_MANY',
  Deadlock: 'ERR_DEADLOCK',
  // a queue on a server (mpthreads/redis)
  ConnectionError: 'ConnectionError',
  QueueMismatch: 'ERR_QUEUE_MISMATCH',
  // a ProcessError made without a code
  Process: 'ERR_PROCESS',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Root of every error mpthreads raises on purpose (Python's `multiprocessing.ProcessError`). */
export class ProcessError extends Error {
  readonly code: string;
  constructor(message: string, code: ErrorCode = ErrorCode.Process, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
  override get name(): string {
    return this.constructor.name;
  }
}

/** `getNowait()`, or `get()` whose timeout passed, found no item (Python's `queue.Empty`). */
export class Empty extends ProcessError {
  constructor(message = 'queue is empty') {
    super(message, ErrorCode.Empty);
  }
}

/** `putNowait()`, or `put()` whose timeout passed, found the queue full (Python's `queue.Full`). */
export class Full extends ProcessError {
  constructor(message = 'queue is full') {
    super(message, ErrorCode.Full);
  }
}

/** The other end of a connection is gone and everything it sent has been received. */
export class EOFError extends ProcessError {
  constructor(message = 'the other end of the connection is closed and every message has been received') {
    super(message, ErrorCode.EOFError);
  }
}

/** The handle was closed, or moved to another thread, and cannot be used here any more. */
export class ClosedError extends ProcessError {
  constructor(message = 'handle is closed') {
    super(message, ErrorCode.ClosedError);
  }
}

/** A bytes message did not fit; `data` holds the whole message. */
export class BufferTooShort extends ProcessError {
  readonly data: Uint8Array;
  /** `room`: the bytes there were (the message says so when given). Both optional, as the other errors' are. */
  constructor(data: Uint8Array = new Uint8Array(0), room?: number) {
    super(
      `message of ${data.byteLength} bytes does not fit in ${room === undefined ? 'the buffer' : `${room} bytes`}`,
      ErrorCode.BufferTooShort,
    );
    this.data = data;
  }
}

/** A wait with a `timeout` option ran out of time. */
export class TimeoutError extends ProcessError {
  constructor(message = 'timed out') {
    super(message, ErrorCode.TimeoutError);
  }
}

/**
 * A Pool's worker died while it ran a task (process.exit(), out of heap, terminated): that task's call rejects
 * with this, and the pool replaces the worker (Python's Pool would wait forever here).
 */
export class WorkerLostError extends ProcessError {
  constructor(message = 'the worker running this task died', options?: ErrorOptions) {
    super(message, ErrorCode.WorkerLostError, options);
  }
}

/**
 * A Barrier was broken (`abort()`, a wait that timed out, an action that threw) or reset while this wait was
 * in it (Python's `threading.BrokenBarrierError`).
 */
export class BrokenBarrierError extends ProcessError {
  constructor(message = 'the barrier is broken') {
    super(message, ErrorCode.BrokenBarrierError);
  }
}

/**
 * The server behind a queue (mpthreads/redis) cannot be reached, or was lost and did not come back in time. The
 * message names the URL (without its password).
 */
export class ConnectionError extends ProcessError {
  readonly url: string;
  constructor(url: string, detail: string, options?: ErrorOptions) {
    super(`cannot reach ${url}: ${detail}`, ErrorCode.ConnectionError, options);
    this.url = url;
  }
}

/**
 * A broken invariant of mpthreads itself: a bug to report, not a misuse to handle. Not a ProcessError, so that
 * no `catch (e) { if (e instanceof ProcessError) ... }` in user code mistakes it for one of the above.
 */
export class InternalError extends Error {
  readonly code = 'ERR_INTERNAL';
  constructor(message: string, options?: ErrorOptions) {
    super(`bug in mpthreads: ${message} (please report it)`, options);
  }
  override get name(): string {
    return 'InternalError';
  }
}

/** Makes the InternalError for a broken invariant: `throw bug('...')`. */
export function bug(message: string): InternalError {
  return new InternalError(message);
}

// Errors are rebuilt across threads by name; this maps the names a worker may report back to classes.
const byName: Record<string, new (message: string) => Error> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
  ProcessError,
  Empty,
  Full,
  EOFError,
  ClosedError,
  TimeoutError,
  WorkerLostError,
  BrokenBarrierError,
};

/**
 * The shape an error takes on the wire: everything needed to rebuild it with its class name, message, stack,
 * cause and own enumerable properties (`code`, `errno`, fields of the user's own error classes).
 */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  /** The error's `cause`, itself serialized when it is an error. */
  cause?: { error: SerializedError } | { value: unknown };
  /** Own enumerable properties, as they were. */
  props?: Record<string, unknown>;
  /** A DOMException (DataCloneError, AbortError, ...): rebuilt as one, `name` its name. */
  dom?: true;
  /** An AggregateError's `errors` (an own property, not enumerable), each serialized when it is an error. */
  errors?: ({ error: SerializedError } | { value: unknown })[];
  /** What was thrown when it was not an Error (`throw 'x'`), as it was: a pool task's call rejects with it. */
  thrown?: { value: unknown };
}

/**
 * Describes `error` for the wire. `withValues` false leaves out what may not be cloneable (a cause that is not
 * an error, property values), for a channel that cannot copy everything.
 */
export function serializeError(error: unknown, withValues = true, depth = 0): SerializedError {
  if (!(error instanceof Error)) {
    const out: SerializedError = { name: 'Error', message: `non-error thrown: ${describe(error)}` };
    if (withValues) out.thrown = { value: error };
    return out;
  }
  // `class MyError extends Error {}` keeps name 'Error'; report the class, as Python's traceback does.
  const ctor = (error as { constructor?: { name?: unknown } }).constructor;
  const className = typeof ctor?.name === 'string' && ctor.name !== '' ? ctor.name : error.name;
  const name = error.name === 'Error' && ctor !== Error ? className : String(error.name);
  const out: SerializedError = { name, message: String(error.message) };
  if (error instanceof DOMException) out.dom = true;
  if (error.stack !== undefined) out.stack = String(error.stack);
  if ('cause' in error && depth < 8) {
    out.cause =
      error.cause instanceof Error
        ? { error: serializeError(error.cause, withValues, depth + 1) }
        : withValues
          ? { value: error.cause }
          : undefined;
    if (out.cause === undefined) delete out.cause;
  }
  if (error instanceof AggregateError && Array.isArray(error.errors) && depth < 8) {
    out.errors = error.errors.map((e: unknown) =>
      e instanceof Error
        ? { error: serializeError(e, withValues, depth + 1) }
        : { value: withValues ? e : describe(e) },
    );
  }
  const props: Record<string, unknown> = {};
  let any = false;
  for (const key of Object.keys(error)) {
    if (key === 'cause') continue;
    let value: unknown;
    try {
      value = (error as unknown as Record<string, unknown>)[key];
      // Without values: only those that can be copied, each on its own (one that cannot must not drop the rest).
      if (!withValues && value !== null && typeof value === 'object') value = structuredClone(value);
      else if (!withValues && (typeof value === 'function' || typeof value === 'symbol')) continue;
    } catch {
      continue; // a getter that throws, or a value that cannot be copied: left out
    }
    props[key] = value;
    any = true;
  }
  if (any) out.props = props;
  return out;
}

/** Classes whose constructor does not take a message alone: rebuilt from their prototype, as registered ones are. */
const byPrototype: Record<string, object> = { BufferTooShort: BufferTooShort.prototype };

/** Rebuilds an error from the wire: its class if this thread knows it by name, else an Error with its name. */
/** What a task threw, rebuilt: the value itself when it was not an Error (and could be copied), else an Error. */
export function deserializeThrown(wire: SerializedError): unknown {
  return wire.thrown !== undefined ? wire.thrown.value : deserializeError(wire);
}

export function deserializeError(wire: SerializedError): Error {
  const registered =
    registeredErrorClass(wire.name) ?? (Object.hasOwn(byPrototype, wire.name) ? byPrototype[wire.name] : undefined);
  let error: Error;
  if (registered !== undefined) {
    error = Object.create(registered) as Error;
    Object.defineProperty(error, 'message', { value: wire.message, writable: true, configurable: true });
  } else if (wire.dom === true) {
    error = new DOMException(wire.message, wire.name);
  } else if (wire.name === 'AggregateError') {
    error = new AggregateError([], wire.message);
  } else {
    const Ctor = Object.hasOwn(byName, wire.name) ? byName[wire.name]! : Error;
    error = new Ctor(wire.message);
  }
  if (error.name !== wire.name) {
    Object.defineProperty(error, 'name', { value: wire.name, configurable: true, writable: true });
  }
  Object.defineProperty(error, 'stack', { value: wire.stack, configurable: true, writable: true });
  if (wire.cause !== undefined) {
    const cause = 'error' in wire.cause ? deserializeError(wire.cause.error) : wire.cause.value;
    Object.defineProperty(error, 'cause', { value: cause, configurable: true, writable: true });
  }
  if (wire.errors !== undefined) {
    const errors = wire.errors.map((e) => ('error' in e ? deserializeError(e.error) : e.value));
    Object.defineProperty(error, 'errors', { value: errors, configurable: true, writable: true });
  }
  if (wire.props !== undefined) {
    for (const [key, value] of Object.entries(wire.props)) {
      Object.defineProperty(error, key, { value, enumerable: true, configurable: true, writable: true });
    }
  }
  return error;
}

/** The prototype of an Error class registered (registerClass) under `name` in this thread, if any. */
let registeredErrorClass: (name: string) => object | undefined = () => undefined;
export function setErrorClassLookup(lookup: (name: string) => object | undefined): void {
  registeredErrorClass = lookup;
}

/** A short description of a value for error messages: `-1 (number)`, `"x" (string)`, `[object Object] (object)`. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return `${JSON.stringify(value)} (string)`;
  if (typeof value === 'symbol' || typeof value === 'function')
    return `${String(value).slice(0, 60)} (${typeof value})`;
  if (value === null) return 'null';
  if (typeof value === 'object') return `${Object.prototype.toString.call(value)} (object)`;
  return `${String(value)} (${typeof value})`;
}
