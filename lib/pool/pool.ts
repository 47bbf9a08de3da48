// Pool: Python's multiprocessing.Pool on mpthreads' workers. This file is the public API and the calls' own
// bookkeeping (one result, a list in input order, a stream); scheduler.ts runs the tasks, worker.ts is the
// worker's side, protocol.ts the messages between them.
//
// Every call captures its arguments when it is made (as put does), settles exactly once, and never hangs: a
// task whose worker dies rejects with WorkerLostError and the worker is replaced.
//
// Invariants:
//   Applies without options are captured into #open (one batch per function, in call order) and handed to the
//     scheduler when the thread yields: 200,000 applies in a loop travel in a few chunks, not 200,000 messages.
//     Anything else submitted first flushes #open, so tasks are queued in the order they were submitted.
//   #state goes running -> closed (close) or terminated (terminate), never back.
import { onAbort } from '../abort.ts';
import { availableParallelism } from 'node:os';
import { inspect } from 'node:util';
import { Connection } from '../connection.ts';
import { ClosedError, describe, ErrorCode, ProcessError } from '../errors.ts';
import { abort, captureItem, captureToWait, isHandle, marshalHandles, type Handle } from '../handles.ts';
import { checkOptions, checkSignal, checkTimeout, checkTransferList, type TransferItem } from '../options.ts';
import { isThenable } from '../thenable.ts';
import { batchByteLength, sliceItems } from '../wire/batch.ts';
import { Encoder } from '../wire/encode.ts';
import { Carrying, type Batch } from '../wire/format.ts';
import { AsyncResult, type Outcome } from './async-result.ts';
import { Scheduler, type Call, type Job } from './scheduler.ts';
import { SharedEnd } from './shared-end.ts';

/** An item taken out of a map's batch to travel alone (it moves things, or holds host objects). */
type Lone = { index: number; lone: ReturnType<Encoder['takeLast']> };

/** A function a pool runs: an export of the pool's module, sync or async. */
export type TaskFunction = (...args: any[]) => unknown;

/** Options of `new Pool()`. */
export interface PoolOptions {
  /** The ES module whose exports are the task functions (and the initializer): pass `import.meta.url`. */
  module: string | URL;
  /** How many workers. @default os.availableParallelism() */
  processes?: number;
  /** An export of `module` each worker runs once, with `initargs`, before its first task. */
  initializer?: TaskFunction | string;
  initargs?: readonly unknown[];
  /** A worker that has run this many tasks exits and is replaced. @default unlimited */
  maxtasksperchild?: number;
  /** Heap limits for each worker (see Node's `Worker` `resourceLimits`). */
  resourceLimits?: import('node:worker_threads').ResourceLimits;
  /** Workers are named `${name}-1`, `${name}-2`, ... @default 'PoolWorker' */
  name?: string;
}

/** Options of `apply`. */
export interface ApplyOptions {
  /** Milliseconds the task may run, counted from when it starts; then its worker is stopped (TimeoutError). */
  timeout?: number;
  /** Aborting: a queued task never runs; a running one is stopped with its worker. */
  signal?: AbortSignal;
  /** Buffers and ports moved with the arguments instead of copied. */
  transfer?: TransferItem[];
}

/** Options of `applyAsync`. */
export interface ApplyAsyncOptions<R> extends ApplyOptions {
  /** Called with the result, in this thread, when the task succeeds. */
  callback?: (result: R) => void;
  /** Called with the error when it fails. */
  errorCallback?: (error: unknown) => void;
}

/** Options of `map`, `starmap` and their async forms. */
export interface MapOptions {
  /** At least this many tasks per chunk (small tasks are batched more anyway). @default 1 */
  chunksize?: number;
  /** Aborting: queued tasks never run; running ones are stopped with their workers; the call rejects. */
  signal?: AbortSignal;
}

/** Options of `mapAsync` and `starmapAsync`. */
export interface MapAsyncOptions<R> extends MapOptions {
  callback?: (results: R[]) => void;
  errorCallback?: (error: unknown) => void;
}

/** Options of `imap` and `imapUnordered`. */
export interface ImapOptions {
  /** At least this many tasks per chunk. @default 1 */
  chunksize?: number;
}

const applyKeys = ['timeout', 'signal', 'transfer'] as const;
const applyAsyncKeys = [...applyKeys, 'callback', 'errorCallback'] as const;
const mapKeys = ['chunksize', 'signal'] as const;
const mapAsyncKeys = [...mapKeys, 'callback', 'errorCallback'] as const;
const imapKeys = ['chunksize'] as const;
/** How many tasks of an imap may be submitted and not yet consumed: the bound on its memory. */
const kImapWindow = 4096;
/**
 * ... and, within that, the work it keeps running, in ms at the rate tasks are answered: enough to keep the
 * workers busy while a result goes to the consumer and more input comes back (tiny tasks reach the bound at
 * once; tasks of 30 ms keep the fewest, two per worker).
 */
const kAheadMs = 20;
/** The answer rate is measured again once this long passed (ms), or once a window's worth was answered. */
const kRateMs = 10;
/** An imap's bound until its first result came back: the size of its results is not known before. */
const kFirstWindow = 64;
/** ... and the bytes their inputs and results may take (measured so far, per task), so big items keep fewer. */
const kImapBytes = 32 * 2 ** 20;
/** A slow input is submitted, and the thread let run, this often (ms): its first tasks start as it is read. */
const kReadSlice = 4;
/** An open batch of applies is handed over at this many items even if the thread does not yield. */
const kOpenItems = 8192;

/**
 * A pool dropped without close(): its workers are closed, as Python's Pool is terminated when collected. Its
 * pending calls do not keep it reachable (an imap does): close() lets their tasks finish and their callbacks run.
 */
const dropped = new FinalizationRegistry<Scheduler>((scheduler) => scheduler.close());

/**
 * A pool of worker threads running exported functions, Python's `multiprocessing.Pool`.
 *
 * @example
 * export function square(x: number) { return x * x; }
 * if (isMainThread) {
 *   await using pool = new Pool({ module: import.meta.url, processes: 4 });
 *   await pool.map(square, [1, 2, 3]); // [1, 4, 9]
 * }
 */
export class Pool {
  readonly #scheduler: Scheduler;
  #state: 'running' | 'closed' | 'terminated' = 'running';
  /** Captures a map's or an imap window's items (reused: an encoder costs more to make than to fill). */
  readonly #mapEncoder = new Encoder({ isHandle });
  #mapEncoderBusy = false;
  /** Applies captured since the thread last yielded, for one function. */
  #open: { fn: string; encoder: Encoder; calls: ApplyCall[] } | undefined;
  /** An item is being captured into #open (its getters run now). */
  #filling = false;
  #openScheduled = false;
  /** imaps whose input is not read to its end: close() reads the rest of it, as Python's imap submits it all. */
  readonly #imaps = new Set<ImapCall>();
  /**
   * After close(): resolves once every imap submitted the rest of its input (the workers are closed then), or
   * at terminate() (#endDrains).
   */
  #drained: Promise<void> | undefined;
  #endDrains: (() => void) | undefined;

  constructor(options: PoolOptions) {
    const o = checkOptions(options, 'options', [
      'module',
      'processes',
      'initializer',
      'initargs',
      'maxtasksperchild',
      'resourceLimits',
      'name',
    ]);
    if (o.module === undefined)
      throw new TypeError(
        'options.module is required: pass import.meta.url of the module that exports the task functions',
      );
    const module = moduleHref(o.module);
    const processes =
      o.processes === undefined ? availableParallelism() : positiveInteger(o.processes, 'options.processes');
    const maxtasksperchild =
      o.maxtasksperchild === undefined ? undefined : positiveInteger(o.maxtasksperchild, 'options.maxtasksperchild');
    if (o.initargs !== undefined && !Array.isArray(o.initargs))
      throw new TypeError(`options.initargs must be an array, got ${describe(o.initargs)}`);
    // An end of a pipe goes to one thread; initargs go to every worker, and to each replacement: the pool's
    // workers share it through a relay (shared-end.ts).
    const ends = new Set(
      o.initargs === undefined ? [] : captureItem(o.initargs).handles.filter((h) => h instanceof Connection),
    );
    for (const end of ends)
      if (end.closed) throw new ClosedError('options.initargs holds a Connection that is closed or was sent away');
    if (o.name !== undefined && (typeof o.name !== 'string' || o.name === ''))
      throw new TypeError(`options.name must be a non-empty string, got ${describe(o.name)}`);
    if (o.resourceLimits !== undefined && (o.resourceLimits === null || typeof o.resourceLimits !== 'object')) {
      throw new TypeError(`options.resourceLimits must be an object, got ${describe(o.resourceLimits)}`);
    }
    const initializer = o.initializer === undefined ? null : functionName(o.initializer, 'options.initializer');
    const name = (o.name as string | undefined) ?? 'PoolWorker';
    const shared = [...ends].map((end) => new SharedEnd(end, name));
    const self = new WeakRef(this); // the scheduler must not keep the pool alive
    try {
      this.#scheduler = new Scheduler({
        submitPending: () => {
          const pool = self.deref();
          if (pool !== undefined && !pool.#filling) pool.#flushOpen();
        },
        ...(shared.length === 0 ? {} : { starting: (start: () => void) => startSharing(shared, start) }),
        module,
        processes,
        initializer,
        initargs: (o.initargs as unknown[] | undefined) ?? [],
        maxtasksperchild,
        resourceLimits: o.resourceLimits as object | undefined,
        name,
      });
    } catch (error) {
      for (const end of shared) end.cancel();
      throw error;
    }
    dropped.register(this, this.#scheduler);
    if (shared.length > 0)
      void this.#scheduler.allExited.then(() => {
        for (const end of shared) end.poolEnded();
      });
  }

  /** How many workers the pool keeps. */
  get processes(): number {
    return this.#scheduler.processes;
  }

  /** What console.log shows: Python's repr, `<Pool state=running processes=4>`. */
  [inspect.custom](): string {
    return `<Pool state=${this.#state} processes=${this.processes}>`;
  }

  /** Runs `fn(...args)` in a worker and resolves with what it returns (or what its promise resolves to). */
  apply<F extends TaskFunction>(
    fn: F | string,
    args?: Readonly<Parameters<F>>,
    options?: ApplyOptions,
  ): Promise<Awaited<ReturnType<F>>> {
    try {
      return this.#apply(fn, args, options, applyKeys).promise as Promise<Awaited<ReturnType<F>>>;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** `apply` that returns an AsyncResult at once (Python's `apply_async`); throws at the call on bad input. */
  applyAsync<F extends TaskFunction>(
    fn: F | string,
    args?: Readonly<Parameters<F>>,
    options?: ApplyAsyncOptions<Awaited<ReturnType<F>>>,
  ): AsyncResult<Awaited<ReturnType<F>>> {
    const call = this.#apply(fn, args, options, applyAsyncKeys);
    return new AsyncResult(call.promise as Promise<Awaited<ReturnType<F>>>, () => call.outcome);
  }

  /** Runs `fn` on each item of `iterable`; resolves with the results in input order. */
  map<A, R>(fn: ((a: A) => R) | string, iterable: Iterable<A>, options?: MapOptions): Promise<Awaited<R>[]> {
    try {
      return this.#map(fn, iterable, false, options, mapKeys).promise as Promise<Awaited<R>[]>;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Like `map`, each item being the arguments of one call: `fn(...item)`. */
  starmap<F extends TaskFunction>(
    fn: F | string,
    iterable: Iterable<Readonly<Parameters<F>>>,
    options?: MapOptions,
  ): Promise<Awaited<ReturnType<F>>[]> {
    try {
      return this.#map(fn, iterable, true, options, mapKeys).promise as Promise<Awaited<ReturnType<F>>[]>;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** `map` that returns an AsyncResult at once (Python's `map_async`). */
  mapAsync<A, R>(
    fn: ((a: A) => R) | string,
    iterable: Iterable<A>,
    options?: MapAsyncOptions<Awaited<R>>,
  ): AsyncResult<Awaited<R>[]> {
    const call = this.#map(fn, iterable, false, options, mapAsyncKeys);
    return new AsyncResult(call.promise as Promise<Awaited<R>[]>, () => call.outcome);
  }

  /** `starmap` that returns an AsyncResult at once. */
  starmapAsync<F extends TaskFunction>(
    fn: F | string,
    iterable: Iterable<Readonly<Parameters<F>>>,
    options?: MapAsyncOptions<Awaited<ReturnType<F>>>,
  ): AsyncResult<Awaited<ReturnType<F>>[]> {
    const call = this.#map(fn, iterable, true, options, mapAsyncKeys);
    return new AsyncResult(call.promise as Promise<Awaited<ReturnType<F>>[]>, () => call.outcome);
  }

  /**
   * The results of `fn` over `iterable`, in input order, as they are ready. Lazy: it reads the input only as
   * far as needed to keep the workers busy (a bounded window), so an endless generator with a slow consumer
   * holds bounded memory. Stopping early (`break`) closes the input.
   */
  imap<A, R>(
    fn: ((a: A) => R) | string,
    iterable: Iterable<A> | AsyncIterable<A>,
    options?: ImapOptions,
  ): AsyncIterableIterator<Awaited<R>> {
    return this.#imap(fn, iterable, true, options) as AsyncIterableIterator<Awaited<R>>;
  }

  /** Like `imap`, in the order the results are ready: one slow task does not hold up the others. */
  imapUnordered<A, R>(
    fn: ((a: A) => R) | string,
    iterable: Iterable<A> | AsyncIterable<A>,
    options?: ImapOptions,
  ): AsyncIterableIterator<Awaited<R>> {
    return this.#imap(fn, iterable, false, options) as AsyncIterableIterator<Awaited<R>>;
  }

  /**
   * No more tasks; those submitted still run, then the workers exit. An imap made before counts as submitted
   * whole (as in Python): the rest of its input is read now, and its results wait for its consumer.
   */
  close(): void {
    if (this.#state !== 'running') return;
    this.#flushOpen();
    this.#state = 'closed';
    if (this.#imaps.size === 0) {
      this.#scheduler.close();
      return;
    }
    const drains = [...this.#imaps].map((call) => call.drain());
    this.#drained = new Promise((resolve) => {
      this.#endDrains = resolve;
      void Promise.all(drains).then(() => {
        if (this.#state === 'closed') this.#scheduler.close();
        resolve();
      });
    });
  }

  /** Stops the workers now; calls not yet settled reject with ClosedError. */
  terminate(): void {
    if (this.#state === 'terminated') return;
    this.#flushOpen();
    this.#state = 'terminated';
    const error = new ClosedError('pool was terminated');
    this.#scheduler.terminate(error);
    // An imap whose input has more to give (or waits for it) has nothing submitted for its next result to fail.
    for (const call of [...this.#imaps]) call.terminate(error);
    this.#endDrains?.(); // a join() waiting for an input that never ends waits for the workers only
  }

  /** After close() or terminate(): resolves when every worker has exited. */
  join(): Promise<void> {
    if (this.#state === 'running') {
      return Promise.reject(
        new ProcessError('pool is still running: call close() or terminate() before join()', ErrorCode.ProcessRunning),
      );
    }
    const drained = this.#state === 'closed' ? this.#drained : undefined;
    if (drained === undefined) return this.#scheduler.exited();
    // Kept alive while the inputs are read: the workers are daemons, and an input may wait on nothing that is.
    const keepAlive = setInterval(() => {}, 1 << 30);
    return drained.finally(() => clearInterval(keepAlive)).then(() => this.#scheduler.exited());
  }

  /** `await using pool = new Pool(...)`: close(), then join() (Python's context manager calls terminate()). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.join();
  }

  // --- calls --------------------------------------------------------------------------------------------

  #checkRunning(): void {
    if (this.#state !== 'running') throw new ClosedError('pool is closed');
    const refusal = this.#scheduler.refusal;
    if (refusal !== undefined) throw refusal;
  }

  #apply(fn: unknown, args: unknown, options: unknown, keys: readonly string[]): ApplyCall {
    const name = functionName(fn, 'fn');
    if (args !== undefined && !Array.isArray(args)) throw new TypeError(`args must be an array, got ${describe(args)}`);
    const o = checkOptions(options, 'options', keys);
    const timeout = checkTimeout(o.timeout);
    const signal = checkSignal(o.signal);
    const transfer = checkTransferList(o.transfer);
    const callback = checkCallback(o.callback, 'options.callback');
    const errorCallback = checkCallback(o.errorCallback, 'options.errorCallback');
    this.#checkRunning();
    const taskArgs = (args as unknown[] | undefined) ?? [];
    const call = new ApplyCall(callback, errorCallback);
    if (signal?.aborted) {
      call.settle(0, false, signal.reason);
      return call;
    }
    const alone = timeout !== Infinity || signal !== undefined || transfer !== undefined;
    if (!alone) {
      // The common case: captured into the open batch of this function, handed over when the thread yields.
      let open = this.#open;
      if (open !== undefined && open.fn !== name) {
        this.#flushOpen();
        open = undefined;
      }
      open ??= this.#open = { fn: name, encoder: new Encoder({ isHandle }), calls: [] };
      // A getter of the arguments may block (a waitSync): the pre-blocking hook must not hand over this batch
      // while it is being filled (submitPending).
      this.#filling = true;
      let carrying: Carrying;
      try {
        carrying = open.encoder.put(taskArgs);
      } finally {
        this.#filling = false;
      }
      if (carrying >= Carrying.Cloned) {
        const lone = open.encoder.takeLast(undefined);
        this.#flushOpen();
        this.#submitAlone(name, lone, call, Infinity);
        return call;
      }
      open.calls.push(call);
      if (open.calls.length >= kOpenItems) this.#flushOpen();
      else if (!this.#openScheduled) {
        this.#openScheduled = true;
        setImmediate(() => {
          this.#openScheduled = false;
          this.#flushOpen();
        });
      }
      return call;
    }
    this.#flushOpen();
    // Its transfer list is moved now, as a put() that must wait moves it: the caller's buffers are detached at
    // the call, not when a worker is free.
    const lone = captureToWait(taskArgs, transfer);
    this.#submitAlone(name, lone, call, timeout);
    if (signal !== undefined) {
      call.onSettled = onAbort(signal, () => {
        if (!call.live) return;
        call.settle(0, false, signal.reason);
        this.#scheduler.cancel(call);
      });
    }
    return call;
  }

  #submitAlone(fn: string, lone: ReturnType<typeof captureItem>, call: ApplyCall, timeout: number): void {
    const captured = marshalHandles(lone.batch, lone.transfer, lone.handles as Handle[], lone.handleSlots);
    this.#scheduler.submit({
      fn,
      star: true,
      batch: lone.batch,
      calls: [call],
      base: 0,
      next: 0,
      alone: true,
      timeout,
      minChunk: 1,
      captured,
    });
  }

  /**
   * Captures every item of `items` into one batch (with the pool's reusable encoder, or a fresh one for a
   * capture inside a capture). An item that moves things or holds host objects is taken out to travel alone,
   * an undefined keeping its place. Throws what capturing an item throws, with nothing kept.
   */
  #captureItems(items: Iterable<unknown>, star: boolean): { batch: Batch; lones: Lone[]; n: number } {
    const shared = !this.#mapEncoderBusy;
    const encoder = shared ? this.#mapEncoder : new Encoder({ isHandle });
    this.#mapEncoderBusy = true;
    const lones: Lone[] = [];
    let n = 0;
    try {
      for (const item of items) {
        if (star && !Array.isArray(item))
          throw new TypeError(`starmap takes an iterable of argument arrays, got an item ${describe(item)}`);
        if (encoder.put(item) >= Carrying.Cloned) {
          lones.push({ index: n, lone: encoder.takeLast(undefined) });
          encoder.put(undefined);
        }
        n++;
      }
      return { batch: encoder.finish().batch, lones, n };
    } catch (error) {
      encoder.finish(); // drops what was captured
      throw error;
    } finally {
      if (shared) this.#mapEncoderBusy = false;
    }
  }

  /** Hands the open batch of applies to the scheduler. */
  #flushOpen(): void {
    const open = this.#open;
    if (open === undefined) return;
    this.#open = undefined;
    if (open.calls.length === 0) return;
    const { batch } = open.encoder.finish();
    this.#scheduler.submit({
      fn: open.fn,
      star: true,
      batch,
      calls: open.calls,
      base: 0,
      next: 0,
      alone: false,
      timeout: Infinity,
      minChunk: 1,
    });
  }

  #map(fn: unknown, iterable: unknown, star: boolean, options: unknown, keys: readonly string[]): MapCall {
    const name = functionName(fn, 'fn');
    const o = checkOptions(options, 'options', keys);
    const chunksize = o.chunksize === undefined ? 1 : positiveInteger(o.chunksize, 'options.chunksize');
    const signal = checkSignal(o.signal);
    const callback = checkCallback(o.callback, 'options.callback');
    const errorCallback = checkCallback(o.errorCallback, 'options.errorCallback');
    if (
      iterable === null ||
      (typeof iterable !== 'object' && typeof iterable !== 'string') ||
      typeof (iterable as Iterable<unknown>)[Symbol.iterator] !== 'function'
    ) {
      throw new TypeError(`iterable must be an iterable (an array, a generator, ...), got ${describe(iterable)}`);
    }
    this.#checkRunning();
    // Captured at the call, every item (as Python's map reads the whole iterable first).
    const { batch, lones, n } = this.#captureItems(iterable as Iterable<unknown>, star);
    const call = new MapCall(n, callback, errorCallback);
    if (signal?.aborted) {
      call.abort(signal.reason);
      return call;
    }
    if (n === 0) return call;
    this.#flushOpen();
    this.#submitMap(name, star, batch, call, chunksize, lones);
    if (signal !== undefined) {
      call.onSettled = onAbort(signal, () => {
        if (!call.live) return;
        call.abort(signal.reason);
        this.#scheduler.cancel(call);
      });
    }
    return call;
  }

  /** Submits the tasks of a map (or of a window of an imap): runs of plain items as jobs, items that move things alone. */
  #submitMap(fn: string, star: boolean, batch: Batch, call: Call, chunksize: number, lones: Lone[], base = 0): void {
    let from = 0;
    const job = (from_: number, to: number): Job => ({
      fn,
      star,
      batch: sliceItems(batch, from_, to),
      calls: call,
      base: base + from_,
      next: 0,
      alone: false,
      timeout: Infinity,
      minChunk: chunksize,
    });
    // Every lone's handles first: one that cannot travel (a closed queue, a pipe end gone elsewhere) throws
    // before any task of the call is submitted, so the caller can take the whole window back.
    const marshalled: ReturnType<typeof marshalHandles>[] = [];
    try {
      for (const { lone } of lones)
        marshalled.push(marshalHandles(lone.batch, lone.transfer, lone.handles as Handle[], lone.handleSlots));
    } catch (error) {
      for (const captured of marshalled) abort(captured);
      throw error;
    }
    for (const [i, { index, lone }] of lones.entries()) {
      if (index > from) this.#scheduler.submit(job(from, index));
      const captured = marshalled[i]!;
      this.#scheduler.submit({
        fn,
        star,
        batch: lone.batch,
        calls: call,
        base: base + index,
        next: 0,
        alone: true,
        timeout: Infinity,
        minChunk: 1,
        captured,
      });
      from = index + 1;
    }
    if (from < batch.n) this.#scheduler.submit(job(from, batch.n));
  }

  #imap(fn: unknown, iterable: unknown, ordered: boolean, options: unknown): AsyncIterableIterator<unknown> {
    const name = functionName(fn, 'fn');
    const o = checkOptions(options, 'options', imapKeys);
    const chunksize = o.chunksize === undefined ? 1 : positiveInteger(o.chunksize, 'options.chunksize');
    const source = iteratorOf(iterable);
    this.#checkRunning();
    const call = new ImapCall(
      ordered,
      source,
      (items, base, call) => {
        if (this.#state === 'terminated') throw new ClosedError('pool was terminated');
        const { batch, lones } = this.#captureItems(items, false);
        this.#flushOpen();
        this.#submitMap(name, false, batch, call, chunksize, lones, base);
        return lones.reduce((sum, { lone }) => sum + batchByteLength(lone.batch), batchByteLength(batch));
      },
      (call) => this.#scheduler.cancel(call, false),
      (call) => this.#imaps.delete(call),
      2 * this.#scheduler.processes,
      Math.min(kImapWindow, this.#scheduler.processes * chunksize), // a chunk per worker, if the bound allows
    );
    this.#imaps.add(call);
    call.start();
    return call;
  }
}

// --- the calls' bookkeeping ----------------------------------------------------------------------------

/** One task's call: apply, applyAsync. */
class ApplyCall implements Call {
  readonly promise: Promise<unknown>;
  #resolve!: (value: unknown) => void;
  #reject!: (error: unknown) => void;
  /** Where the call stands: its promise settles with it, the callback first (settleWithCallback). */
  outcome: Outcome = 'pending';
  onSettled: (() => void) | undefined;

  constructor(
    readonly callback: ((value: any) => void) | undefined,
    readonly errorCallback: ((error: unknown) => void) | undefined,
  ) {
    this.promise = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  get live(): boolean {
    return this.outcome === 'pending';
  }

  settle(_index: number, ok: boolean, value: unknown): void {
    if (this.outcome !== 'pending') return;
    this.outcome = ok ? 'fulfilled' : 'rejected';
    this.onSettled?.();
    settleWithCallback(ok, value, this.#resolve, this.#reject, ok ? this.callback : this.errorCallback);
  }
}

/**
 * A map's call: results in input order. As Python's (3.8+), it is ready once every task has run, failed or not,
 * so a failure stops none of the others; then the first failure in input order rejects it.
 */
class MapCall implements Call {
  readonly promise: Promise<unknown[]>;
  readonly #results: unknown[];
  readonly #settled: Uint8Array;
  #count = 0;
  #failure: { index: number; error: unknown } | undefined;
  /** Where the call stands: its promise settles with it, the callback first (settleWithCallback). */
  outcome: Outcome = 'pending';
  #resolve!: (value: unknown[]) => void;
  #reject!: (error: unknown) => void;
  onSettled: (() => void) | undefined;

  constructor(
    readonly n: number,
    readonly callback: ((value: any) => void) | undefined,
    readonly errorCallback: ((error: unknown) => void) | undefined,
  ) {
    this.#results = new Array<unknown>(n);
    this.#settled = new Uint8Array(n);
    this.promise = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    if (n === 0) this.#finish(true, this.#results);
  }

  get live(): boolean {
    return this.outcome === 'pending';
  }

  settle(index: number, ok: boolean, value: unknown): void {
    if (this.outcome !== 'pending') return;
    this.#record(index, ok, value);
    this.#advance();
  }

  settleRun(start: number, values: unknown[], errors: Map<number, unknown> | null): void {
    if (this.outcome !== 'pending') return;
    for (let i = 0; i < values.length; i++) {
      if (errors?.has(i)) this.#record(start + i, false, errors.get(i));
      else this.#record(start + i, true, values[i]);
    }
    this.#advance();
  }

  #record(index: number, ok: boolean, value: unknown): void {
    if (this.#settled[index] === 1) return;
    this.#settled[index] = 1;
    this.#count++;
    if (ok) this.#results[index] = value;
    else if (this.#failure === undefined || index < this.#failure.index) this.#failure = { index, error: value };
  }

  #advance(): void {
    if (this.#count < this.n) return;
    if (this.#failure !== undefined) this.#finish(false, this.#failure.error);
    else this.#finish(true, this.#results);
  }

  abort(reason: unknown): void {
    this.#finish(false, reason);
  }

  #finish(ok: boolean, value: unknown): void {
    if (this.outcome !== 'pending') return;
    this.outcome = ok ? 'fulfilled' : 'rejected';
    this.onSettled?.();
    settleWithCallback(
      ok,
      value,
      this.#resolve as (value: unknown) => void,
      this.#reject,
      ok ? this.callback : this.errorCallback,
    );
  }
}

/** A run of results, a part of a chunk's: task `start + i`'s value is `values[i]`, or its error `errors.get(i)`. */
interface ResultRun {
  start: number;
  values: unknown[];
  errors: Map<number, unknown> | null;
  /** The next of them to yield. */
  at: number;
}

/**
 * An imap's call, and its async iterator: pulls the input into windows of tasks, yields results in order (or
 * as they come). #room() says how many more tasks it may submit:
 *   - tasks not yet answered: the work of kAheadMs at the rate tasks are answered (#window(): two per worker
 *     at least, or a chunk per worker), so the workers stay busy and slow tasks are not read far ahead;
 *   - tasks not yet consumed (answered ones waiting for the consumer included): #window() too while the
 *     consumer is away (a slow consumer is not read far ahead), but #bound() (kImapWindow, fewer when tasks
 *     are big: about kImapBytes) while it waits for a result (ordered: a slow task at the head holds back
 *     the results after it, and the workers go on meanwhile).
 */
class ImapCall implements Call, AsyncIterableIterator<unknown> {
  readonly #ordered: boolean;
  readonly #source: Iterator<unknown> | AsyncIterator<unknown>;
  /** Submits `items` as tasks base, base + 1, ...; returns the bytes they were captured into. */
  readonly #submit: (items: unknown[], base: number, call: Call) => number;
  /** The fewest tasks the window keeps, however big they are: two per worker. */
  readonly #minTasks: number;
  /** ... and with a chunksize, a chunk per worker (unless the tasks are too big for it). */
  readonly #chunkTasks: number;
  /** Bytes of the inputs submitted and of the results received so far, and how many of each. */
  #inBytes = 0;
  #inputs = 0;
  #outBytes = 0;
  #outputs = 0;
  /** Tasks answered per ms, measured since #rateSince (0: not measured yet), and #answered then. */
  #rate = 0;
  #rateSince = 0;
  #rateBase = 0;
  readonly #cancel: (call: Call) => void;
  readonly #inputEnded: (call: ImapCall) => void;
  /**
   * Results not yet yielded, as they came (a run is a part of a chunk's results): by their first task
   * (ordered), or in arrival order (unordered). Kept as runs, not one entry per task: a window holds thousands.
   */
  readonly #runs = new Map<number, ResultRun>();
  readonly #arrived: ResultRun[] = [];
  /** The run being yielded. */
  #yielding: ResultRun | undefined;
  #submitted = 0;
  #consumed = 0;
  #exhausted = false;
  #sourceError: { error: unknown } | undefined;
  /** A step of an async input asked for and not yet arrived (taken up by the next pull). */
  #pendingStep: Promise<IteratorResult<unknown>> | undefined;
  #done = false;
  /** Done by a task's failure: the tasks submitted still run (as Python's), their results dropped. */
  #runsOn = false;
  /** Tasks answered (settled), whether or not the consumer still wanted them. */
  #answered = 0;
  #waiting: (() => void) | undefined;
  /**
   * A next()/return()/throw() is running: calls made meanwhile wait in #queued and run in turn, as an async
   * generator's do. The promises callers get carry no handler of ours, so a rejection nobody handles is reported.
   */
  #busy = false;
  readonly #queued: {
    step: () => Promise<IteratorResult<unknown>>;
    resolve: (result: IteratorResult<unknown>) => void;
    reject: (error: unknown) => void;
  }[] = [];
  #pulling: Promise<void> | undefined;
  /** A step of the input is being read (its promise has not settled): the input's return() waits behind it. */
  #reading: Promise<unknown> | undefined;
  /** The pool closed: the input is read to its end, not a window ahead of the consumer. */
  #draining = false;

  constructor(
    ordered: boolean,
    source: Iterator<unknown> | AsyncIterator<unknown>,
    submit: (items: unknown[], base: number, call: Call) => number,
    cancel: (call: Call) => void,
    inputEnded: (call: ImapCall) => void,
    minTasks: number,
    chunkTasks: number,
  ) {
    this.#minTasks = minTasks;
    this.#chunkTasks = chunkTasks;
    this.#ordered = ordered;
    this.#source = source;
    this.#submit = submit;
    this.#cancel = cancel;
    this.#inputEnded = inputEnded;
  }

  /** Nothing more will be submitted: the input ended or failed, or the call closed. */
  get #ended(): boolean {
    return this.#done || this.#exhausted || this.#sourceError !== undefined;
  }

  /**
   * The pool closed: reads the rest of the input and submits it, a window at a time, letting the thread run
   * between windows. Resolves once nothing more will be submitted; never rejects (failures go to the consumer).
   */
  async drain(): Promise<void> {
    this.#draining = true;
    while (!this.#ended) {
      await this.#fill();
      if (!this.#ended) await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Submits the first window now, as Python's imap submits at the call: the workers start before you iterate. */
  start(): void {
    void this.#fill();
  }

  get live(): boolean {
    return !this.#done || (this.#runsOn && this.#answered < this.#submitted);
  }

  resultBytes(bytes: number, n: number): void {
    this.#outBytes += bytes;
    this.#outputs += n;
  }

  /**
   * The most tasks submitted and not consumed: kImapWindow, fewer when they are big (about kImapBytes of their
   * inputs and results), never fewer than #minTasks; kFirstWindow until a result tells how big results are.
   */
  #bound(): number {
    if (this.#outputs === 0) return Math.max(this.#minTasks, kFirstWindow);
    const perTask = (this.#inputs === 0 ? 0 : this.#inBytes / this.#inputs) + this.#outBytes / this.#outputs;
    const bound = perTask * kImapWindow <= kImapBytes ? kImapWindow : Math.floor(kImapBytes / perTask);
    return Math.max(this.#minTasks, bound);
  }

  /** The tasks of kAheadMs at the rate they are answered: at least a chunk (or two tasks) per worker. */
  #window(): number {
    const bound = this.#bound();
    const floor = Math.max(this.#minTasks, Math.min(this.#chunkTasks, bound));
    return Math.max(floor, Math.min(bound, Math.ceil(this.#rate * kAheadMs)));
  }

  /** How many more tasks may be submitted now (see the class's comment). */
  #room(): number {
    if (this.#draining) return kImapWindow; // closed: the rest of the input goes, a bound's worth at a time
    const window = this.#window();
    const held = this.#waiting === undefined ? window : this.#bound();
    return Math.min(window - (this.#submitted - this.#answered), held - (this.#submitted - this.#consumed));
  }

  /** Worth a pull: half a window free (a few big jobs, not many of one task), or the pool closed (draining). */
  #roomy(): boolean {
    return this.#draining || this.#room() >= Math.max(1, this.#window() / 2);
  }

  /**
   * Measures the answer rate again, once kRateMs passed or a window's worth of tasks was answered (tiny tasks
   * grow the window in a few round trips). The window grows at most fourfold a time: results that arrive
   * together after a pause of this thread are not a rate.
   */
  #measure(): void {
    const now = performance.now();
    const elapsed = now - this.#rateSince;
    const answered = this.#answered - this.#rateBase;
    const window = this.#window();
    if (elapsed < kRateMs && answered < window) return;
    this.#rate = Math.min(answered / Math.max(elapsed, 0.01), (4 * window) / kAheadMs);
    this.#rateSince = now;
    this.#rateBase = this.#answered;
  }

  settle(index: number, ok: boolean, value: unknown): void {
    this.settleRun(index, [ok ? value : undefined], ok ? null : new Map([[0, value]]));
  }

  settleRun(start: number, values: unknown[], errors: Map<number, unknown> | null): void {
    this.#answered += values.length;
    this.#measure();
    if (this.#done || values.length === 0) return;
    const run: ResultRun = { start, values, errors, at: 0 };
    if (this.#ordered) this.#runs.set(start, run);
    else this.#arrived.push(run);
    this.#wake();
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<unknown> {
    return this;
  }

  next(): Promise<IteratorResult<unknown>> {
    // A result is here and no call is under way: no async steps (they were most of an imap's cost per task).
    if (!this.#busy && !this.#done) {
      const outcome = this.#take(true);
      if (outcome !== undefined) {
        this.#consumed++;
        this.#fillIfRoom();
        return Promise.resolve({ done: false, value: outcome.value });
      }
    }
    return this.#inTurn(this.#nextStep);
  }

  /** The consumer is done: earlier calls settle first (with what comes for them), then the input is closed. */
  return(value?: unknown): Promise<IteratorResult<unknown>> {
    return this.#inTurn(async () => {
      await this.#close();
      return { done: true, value: await value }; // as an async generator's return() does
    });
  }

  throw(error?: unknown): Promise<IteratorResult<unknown>> {
    return this.#inTurn(async () => {
      await this.#close();
      throw error;
    });
  }

  /** Runs `step` once every call before it has settled. */
  #inTurn(step: () => Promise<IteratorResult<unknown>>): Promise<IteratorResult<unknown>> {
    if (!this.#busy) return this.#run(step);
    return new Promise((resolve, reject) => this.#queued.push({ step, resolve, reject }));
  }

  async #run(step: () => Promise<IteratorResult<unknown>>): Promise<IteratorResult<unknown>> {
    this.#busy = true;
    try {
      return await step();
    } finally {
      // The next call starts now; this one settles first (its promise resolves once this function returns).
      const next = this.#queued.shift();
      if (next === undefined) this.#busy = false;
      else this.#run(next.step).then(next.resolve, next.reject);
    }
  }

  readonly #nextStep = () => this.#next();

  /**
   * The pool was terminated: the results already here are still yielded; then, once the tasks submitted have
   * failed (the scheduler fails them with `error`), the next call rejects with `error`, and later ones are done.
   * The input is read no further.
   */
  terminate(error: Error): void {
    if (this.#ended) return;
    this.#sourceError = { error };
    this.#inputEnded(this);
    this.#wake();
  }

  async #next(): Promise<IteratorResult<unknown>> {
    for (;;) {
      if (this.#done) return { done: true, value: undefined };
      const outcome = this.#take();
      if (outcome !== undefined) {
        this.#consumed++;
        this.#fillIfRoom();
        if (!outcome.ok) {
          await this.#close(false);
          throw outcome.value;
        }
        return { done: false, value: outcome.value };
      }
      if (this.#consumed === this.#submitted && (this.#exhausted || this.#sourceError !== undefined)) {
        const sourceError = this.#sourceError;
        await this.#close();
        if (sourceError !== undefined) throw sourceError.error;
        return { done: true, value: undefined };
      }
      // Wait for a result, or for a pull to end (the input went on being read meanwhile, up to the window). Not
      // for the pull itself: an async input may submit an item and then wait for its next one for good.
      const woken = new Promise<void>((resolve) => {
        this.#waiting = resolve;
      });
      this.#fillIfRoom();
      await woken;
    }
  }

  /** The next result to yield, taken; with `onlyOk`, only if it is a value (a failure is left in place). */
  #take(onlyOk = false): { ok: boolean; value: unknown } | undefined {
    let run = this.#yielding;
    if (run === undefined || run.at === run.values.length) {
      // Ordered: the next run starts at the task to yield next (runs cover the tasks without overlap).
      run = this.#ordered ? this.#runs.get(this.#consumed) : this.#arrived[0];
      if (run === undefined) return undefined;
      if (this.#ordered) this.#runs.delete(this.#consumed);
      else this.#arrived.shift();
      this.#yielding = run;
    }
    const i = run.at;
    if (run.errors?.has(i)) {
      if (onlyOk) return undefined;
      run.at++;
      return { ok: false, value: run.errors.get(i) };
    }
    run.at++;
    const value = run.values[i];
    run.values[i] = undefined; // yielded: the run no longer keeps it alive
    return { ok: true, value };
  }

  #wake(): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.();
  }

  /** #fill(), unless it would find nothing to do (a pull is under way, or not half a window free). */
  #fillIfRoom(): void {
    if (this.#pulling !== undefined || this.#ended) return;
    if (!this.#roomy()) return;
    void this.#fill();
  }

  /** Pulls the input until the window is full (or the input ends) and submits what it pulled. */
  #fill(): Promise<void> {
    this.#pulling ??= this.#pull().finally(() => {
      this.#pulling = undefined;
    });
    return this.#pulling;
  }

  async #pull(): Promise<void> {
    // Refill once half the window is free, not after every result: a few big jobs, not many of one task.
    if (this.#ended || !this.#roomy()) return;
    let pulled = 0;
    for (let room = this.#room(); !this.#ended && room > 0; room = this.#room()) {
      const items: unknown[] = [];
      const sliceStart = performance.now();
      let slow = false;
      try {
        while (items.length < room && !this.#ended) {
          let step: unknown = this.#pendingStep;
          this.#pendingStep = undefined;
          if (step === undefined) {
            step = this.#source.next();
            // Made a promise once: a thenable's then() may do the work of the step each time it is called.
            if (isThenable(step)) step = this.#watchRead(step as PromiseLike<IteratorResult<unknown>>);
          }
          if (step instanceof Promise) {
            // An async input: submit what we have before waiting for more (the step is kept for the next pull).
            if (items.length > 0) {
              this.#pendingStep = step;
              break;
            }
            step = await step;
          }
          const result = step as IteratorResult<unknown>;
          if (result.done === true) {
            this.#exhausted = true;
            break;
          }
          items.push(result.value);
          // A slow synchronous input: what it gave so far goes to the workers now, and the thread runs (results
          // are taken) before more is read, as Python's task handler, a thread, submits each item as it reads.
          // (The clock is read for each of the first 16 items and every 16th after: it costs a fast input ~10%.)
          if ((items.length < 16 || (items.length & 15) === 0) && performance.now() - sliceStart >= kReadSlice) {
            slow = true;
            break;
          }
        }
      } catch (error) {
        this.#sourceError = { error };
      }
      if (items.length > 0 && !this.#done) {
        if (this.#submitted === 0) this.#rateSince = performance.now();
        const base = this.#submitted;
        this.#submitted += items.length;
        try {
          this.#inBytes += this.#submit(items, base, this); // all or nothing
          this.#inputs += items.length;
        } catch {
          // An item that cannot be copied or handed over: the items before it are submitted (one at a time, to
          // find it), so that their results are yielded; then its error is thrown.
          this.#submitted = base;
          for (const item of items) {
            try {
              this.#inBytes += this.#submit([item], this.#submitted, this);
              this.#inputs++;
              this.#submitted++;
            } catch (error) {
              this.#sourceError = { error };
              break;
            }
          }
        }
      }
      pulled += items.length;
      if (this.#draining && pulled >= kImapWindow) break; // a window at a time: drain() lets the thread run
      if (slow && !this.#ended) await new Promise((resolve) => setImmediate(resolve));
    }
    // The consumer waits for a result or for this (results wake it themselves; waking it for nothing would spin).
    if (this.#ended) {
      this.#inputEnded(this);
      this.#wake();
    }
  }

  /**
   * Reads the input no further and closes it. `cancel` (break, return(), throw()): the tasks not yet sent to a
   * worker are dropped, and those sent run to their end, their results dropped (Python lets the tasks an imap
   * submitted run). Otherwise (a task failed) they all still run.
   */
  async #close(cancel = true): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    this.#runsOn = !cancel;
    this.#inputEnded(this);
    if (cancel) this.#cancel(this);
    this.#wake();
    if (!this.#exhausted) {
      this.#exhausted = true;
      const closing = (async () => {
        try {
          await this.#source.return?.();
        } catch {
          // The input's own clean-up failed: nothing left to tell anyone.
        }
      })();
      // An async generator runs return() after the step it is reading, which may never come: not waited for then.
      if (this.#reading === undefined) await closing;
    }
  }

  /**
   * `step` as a promise, the input marked busy until it settles. Handled now: if it rejects while kept for a
   * later pull, that pull throws it, and until then it is not unhandled.
   */
  #watchRead(step: PromiseLike<IteratorResult<unknown>>): Promise<IteratorResult<unknown>> {
    const reading = Promise.resolve(step);
    this.#reading = reading;
    const done = () => {
      if (this.#reading === reading) this.#reading = undefined;
    };
    reading.then(done, done);
    return reading;
  }
}

// --- argument checks ------------------------------------------------------------------------------------

function functionName(fn: unknown, what: string): string {
  if (typeof fn === 'string') {
    if (fn === '') throw new TypeError(`${what} must be a non-empty export name`);
    return fn;
  }
  if (typeof fn === 'function') {
    if (fn.name === '' || fn.name.startsWith('bound ')) {
      throw new TypeError(
        `${what} must be a function exported by the pool's module (a named export, not ${fn.name === '' ? 'an anonymous function' : 'a bound function'}), or its name`,
      );
    }
    return fn.name;
  }
  throw new TypeError(`${what} must be a function exported by the pool's module, or its name, got ${describe(fn)}`);
}

function positiveInteger(value: unknown, name: string): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a positive integer, got ${describe(value)}`);
  if (!Number.isSafeInteger(value) || value < 1)
    throw new RangeError(`${name} must be a positive integer, got ${describe(value)}`);
  return value;
}

function checkCallback(value: unknown, name: string): ((value: any) => void) | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw new TypeError(`${name} must be a function, got ${describe(value)}`);
  return value as (value: unknown) => void;
}

/**
 * Settles a call's promise, its callback first, as Python's AsyncResult calls it before it is ready to get():
 * code awaiting the result finds the callback done. Never inside the call that made it (a call can settle at
 * once: an empty map, an aborted signal). What the callback throws must not be lost, nor turn into the call's
 * own outcome: it is thrown on its own once the call settled.
 */
function settleWithCallback(
  ok: boolean,
  value: unknown,
  resolve: (value: unknown) => void,
  reject: (error: unknown) => void,
  callback: ((value: any) => void) | undefined,
): void {
  const settle = () => (ok ? resolve(value) : reject(value));
  if (callback === undefined) {
    settle();
    return;
  }
  queueMicrotask(() => {
    try {
      callback(value);
    } finally {
      settle();
    }
  });
}

function moduleHref(module: unknown): string {
  if (module instanceof URL) return module.href;
  if (typeof module !== 'string' || module === '')
    throw new TypeError(`options.module must be a file: URL or a path, got ${describe(module)}`);
  return module;
}

function iteratorOf(iterable: unknown): Iterator<unknown> | AsyncIterator<unknown> {
  if (typeof iterable === 'string') return iterable[Symbol.iterator]();
  if (iterable !== null && typeof iterable === 'object') {
    const asyncIterator = (iterable as AsyncIterable<unknown>)[Symbol.asyncIterator];
    if (typeof asyncIterator === 'function') return asyncIterator.call(iterable);
    const iterator = (iterable as Iterable<unknown>)[Symbol.iterator];
    if (typeof iterator === 'function') return iterator.call(iterable);
  }
  throw new TypeError(`iterable must be an iterable or an async iterable, got ${describe(iterable)}`);
}

/**
 * Runs a worker's `start` with every shared end in initargs handing out a link of its own; returns what to call
 * when that worker is stopped or exits.
 */
function startSharing(shared: readonly SharedEnd[], start: () => void): () => void {
  const retires: (() => void)[] = [];
  const next = (i: number): void => {
    if (i === shared.length) start();
    else retires.push(shared[i]!.starting(() => next(i + 1)));
  };
  next(0);
  return () => {
    for (const retire of retires) retire();
  };
}
