// A Pool's worker: the 'pool' entry a pool's Process runs instead of a target (see protocol.ts). It imports the
// pool's module, runs the initializer, then runs the chunks it is sent, one task at a time, and sends the
// results back in parts, so that a worker that dies loses at most a few milliseconds of finished work.
//
// Invariants:
//   Chunks run in the order they came, one task at a time (an async task is awaited before the next starts).
//   `progress` names the task running (chunk id, index, running = 1) from just before it starts until its
//     result is in hand; the pool reads it if this thread dies.
//   Every task of a chunk is answered exactly once, as a result or a failure, in index order.
//   The pool's port keeps the worker alive, except while an async task is awaited: then it is unref'd, so that
//     a task whose promise nothing can settle is seen (the loop runs dry) and fails with ERR_DEADLOCK.
import type { MessagePort } from 'node:worker_threads';
import { registerEntry } from '../entries.ts';
import { ErrorCode, ProcessError, serializeError, type SerializedError } from '../errors.ts';
import { isHandle, marshalHandles, commit, abort, type Handle } from '../handles.ts';
import type { BootData } from '../protocol.ts';
import { isThenable } from '../thenable.ts';
import { BatchReader } from '../wire/decode.ts';
import { Encoder } from '../wire/encode.ts';
import { Carrying } from '../wire/format.ts';
import { watchForStall } from '../stall.ts';
import { exported, fail, load } from '../worker-main.ts';
import { postBufferedPuts, runTaskEndHooks } from '../context.ts';
import {
  kProgressChunk,
  kProgressIndex,
  kProgressRunning,
  PoolOp,
  type FromWorker,
  type ResultsMessage,
  type RunMessage,
  type ToWorker,
} from './protocol.ts';

/** Results are sent at least this often while a chunk runs (ms of work). */
const kPartMs = 4;
/** The most tasks run between two reads of the clock. */
const kMaxStride = 64;

/** What the pool passes in the worker's args. */
export type PoolWorkerArgs = [port: MessagePort, progress: Int32Array, initializer: string | null, initargs: unknown[]];

/**
 * Sends the results of the running chunk's finished tasks: set while a chunk runs, called if the thread exits
 * in the middle of it (a task's process.exit(), an uncaught error). Unsent, they would run again elsewhere.
 */
let sendFinished: (() => void) | undefined;

async function poolMain(boot: BootData): Promise<void> {
  const { module, args } = await load(boot);
  process.on('exit', () => sendFinished?.());
  const [port, progress, initializer, initargs] = args as PoolWorkerArgs;
  const send = (message: FromWorker, transfer?: readonly unknown[]) => {
    // What the tasks put before is numbered before anything the caller puts once it has this (context.ts).
    postBufferedPuts();
    port.postMessage(message, transfer as never[]);
  };
  if (initializer !== null) {
    try {
      const init = exported(module, initializer, boot.module);
      if (init instanceof ProcessError) throw init;
      await settleOrStall(init(...initargs), port, `initializer "${initializer}"`);
    } catch (error) {
      send({ op: PoolOp.InitFailed, error: serializeError(error, false) });
      return fail(error);
    }
  }
  const functions = new Map<string, ((...args: unknown[]) => unknown) | ProcessError>();
  const lookup = (name: string) => {
    let fn = functions.get(name);
    if (fn === undefined) functions.set(name, (fn = exported(module, name, boot.module)));
    return fn;
  };

  const chunks: RunMessage[] = [];
  let running = false;
  let stopping = false;
  const pump = async () => {
    if (running) return;
    running = true;
    while (chunks.length > 0) await runChunk(chunks.shift()!, lookup, progress, send, port);
    if (stopping) {
      // As a Process's worker does when its target returns: what cannot be handed over in the 'exit' event (a
      // queue on a server sends over a socket) goes first. Still `running`: a second pump must not exit too.
      await runTaskEndHooks();
      process.exit(0);
    }
    running = false;
  };
  port.on('message', (message: ToWorker) => {
    if (message.op === PoolOp.Run) chunks.push(message);
    else stopping = true;
    void pump();
  });
  // The pool is gone (closed, terminated, or its thread exited): nothing more will come.
  port.on('close', () => {
    stopping = true;
    void pump();
  });
  send({ op: PoolOp.Ready });
}

/** Runs the tasks of one chunk and sends their results, in parts. */
async function runChunk(
  chunk: RunMessage,
  lookup: (name: string) => ((...args: unknown[]) => unknown) | ProcessError,
  progress: Int32Array,
  send: (message: FromWorker, transfer?: readonly unknown[]) => void,
  port: MessagePort,
): Promise<void> {
  const fn = lookup(chunk.fn);
  const reader = new BatchReader(chunk.batch);
  const n = chunk.batch.n;
  const encoder = new Encoder({ isHandle });
  let failures: [number, unknown][] | null = null;
  let from = 0;
  let partStart = performance.now();
  // The clock costs ~60 ns a read, a fifth of a tiny task: it is read about 8 times a part, every task when
  // tasks are slow and every `stride` (at most kMaxStride) when they are fast.
  let lastCheck = partStart;
  let stride = 1;
  let untilCheck = 1;
  const flush = (to: number, done: boolean) => {
    if (encoder.count === 0 && !done) {
      from = to;
      return;
    }
    const { batch, transfer } = encoder.finish();
    sendResults(
      send,
      { op: PoolOp.Results, id: chunk.id, from, batch, failures: null, done, ms: performance.now() - partStart },
      failures,
      transfer,
    );
    failures = null;
    from = to;
    partStart = performance.now();
  };
  // While an async task waits, the results before it are sent every kPartMs: a task that waits long (or for
  // good) does not hold back the ones that finished. Armed at the first task that returns a promise.
  let awaiting = -1;
  let ticker: NodeJS.Timeout | undefined;
  const onTick = () => {
    if (awaiting >= 0 && encoder.count > 0 && performance.now() - partStart >= kPartMs) flush(awaiting, false);
  };
  Atomics.store(progress, kProgressChunk, chunk.id);
  let current = 0;
  sendFinished = () => flush(current, false);
  try {
    for (let i = 0; i < n; i++) {
      current = i;
      Atomics.store(progress, kProgressIndex, i);
      Atomics.store(progress, kProgressRunning, 1);
      let value: unknown;
      let error: unknown;
      let failed = false;
      try {
        if (fn instanceof ProcessError) throw fn;
        const args = reader.item(i);
        value = chunk.star ? fn(...(args as unknown[])) : fn(args);
        if (isThenable(value)) {
          ticker ??= setInterval(onTick, kPartMs).unref();
          awaiting = i;
          try {
            value = await settleOrStall(value, port, `task "${chunk.fn}"`);
          } finally {
            awaiting = -1;
          }
        }
      } catch (e) {
        failed = true;
        error = e;
      }
      Atomics.store(progress, kProgressRunning, 0);
      if (!failed) {
        try {
          if (encoder.put(value) >= Carrying.Cloned) {
            // A result that moves things (a handle, a port) or holds host objects travels alone.
            const lone = encoder.takeLast(undefined);
            flush(i, false);
            const captured = marshalHandles(lone.batch, lone.transfer, lone.handles as Handle[], lone.handleSlots);
            try {
              sendResults(
                send,
                {
                  op: PoolOp.Results,
                  id: chunk.id,
                  from: i,
                  batch: lone.batch,
                  failures: null,
                  done: i === n - 1,
                  ms: 0,
                },
                null,
                captured.transfer,
              );
            } catch (e) {
              abort(captured);
              throw e;
            }
            commit(captured, 'the pool');
            from = i + 1;
            continue;
          }
        } catch (e) {
          failed = true;
          error = e; // a result that cannot be copied fails its task, as an uncloneable argument fails its call
        }
      }
      if (failed) {
        encoder.put(undefined);
        (failures ??= []).push([i - from, error]);
      }
      if (i === n - 1) flush(n, true);
      else if (--untilCheck === 0) {
        const now = performance.now();
        const perTask = (now - lastCheck) / stride;
        stride = Math.max(1, Math.min(kMaxStride, Math.floor(kPartMs / 8 / perTask)));
        untilCheck = stride;
        lastCheck = now;
        if (now - partStart >= kPartMs) flush(i + 1, false);
      }
    }
  } finally {
    clearInterval(ticker);
    sendFinished = undefined;
  }
  if (n === 0) flush(0, true);
}

/**
 * What `value` settles to, or a ProcessError (ERR_DEADLOCK) once this thread has nothing left to wait for: the
 * task's promise can never settle, as a Process target's (worker-main.ts). The pool's port, which keeps the
 * worker alive between tasks, is unref'd meanwhile so that such a thread can be seen; it still hears the pool.
 */
async function settleOrStall(value: unknown, port: MessagePort, what: string): Promise<unknown> {
  if (!isThenable(value)) return value;
  let unwatch!: () => void;
  const stalled = new Promise<never>((_, reject) => {
    unwatch = watchForStall(
      () =>
        reject(
          new ProcessError(
            `${what} returned a promise that can never settle: its worker has nothing left to wait for (no timer, open port or I/O)`,
            ErrorCode.Deadlock,
          ),
        ),
      true,
    );
  });
  port.unref();
  try {
    return await Promise.race([value, stalled]);
  } finally {
    unwatch();
    port.ref();
  }
}

/** Sends a part; a failure whose cause or properties cannot be copied is sent without them. */
function sendResults(
  send: (message: FromWorker, transfer?: readonly unknown[]) => void,
  message: ResultsMessage,
  failures: [number, unknown][] | null,
  transfer: readonly unknown[],
): void {
  const serialized = (withValues: boolean): [number, SerializedError][] | null =>
    failures === null ? null : failures.map(([i, e]) => [i, serializeError(e, withValues)]);
  try {
    send({ ...message, failures: serialized(true) }, transfer);
  } catch (error) {
    if (failures === null) throw error;
    send({ ...message, failures: serialized(false) }, transfer);
  }
}

registerEntry('pool', poolMain);
