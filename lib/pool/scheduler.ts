// The Pool's scheduler: its workers, the tasks waiting for them, and what runs where. Calls (pool.ts) hand it
// jobs: tasks of one function, their arguments captured at the call into one batch. It cuts jobs into chunks
// sized by how long the function's tasks take (so tiny tasks go thousands at a time and 1 ms ones a few at a
// time, whatever chunksize says), keeps a worker two chunks deep behind a chunk known to be short (so that it
// never waits for the next) and one deep otherwise (an idle worker takes the next task, as in Python, where
// workers pull tasks: a short task does not wait behind a long one while another worker is free), and settles
// each task exactly once as its results come back, or when its worker dies, times out or is aborted.
//
// Invariants:
//   Every task is in exactly one place: a queued job (not yet dispatched), or a chunk in flight on one worker,
//     or settled. A task settles once: from its results, from its call's abort/timeout, from the death of the
//     worker it was running on (WorkerLostError), or from terminate() (ClosedError).
//   A chunk's results come in order, in parts: chunk.answered counts the tasks settled from its start. When a
//     worker dies, the task its `progress` names as running fails; the chunk's other unanswered tasks had not
//     run, or ran without their results reaching us: they are queued again, at the front (so a task can run
//     twice, never settle twice). A chunk whose call gave up (cancel) is `cancelled`: its results are dropped,
//     it is never queued again, and its worker is stopped while running it, never while running another
//     call's. A worker the pool stopped (`killed`) fails nothing else: should it have gone on to another
//     chunk just then, that chunk's running task is queued again too.
//   A job marked `alone` (a per-task timeout or signal, or arguments that move things) goes one task at a time
//     to a worker that runs nothing else, so that stopping that worker stops that task only. Its batch's bytes
//     are copied, not moved, so that it can be sent again if that worker dies before running it; one whose
//     arguments move things (transferred buffers, ports, handles) goes only to a ready worker, as what it
//     moved cannot be sent twice.
//   Dispatch runs on this thread's event loop, and at a call and just before the thread blocks
//     (beforeBlocking: queued tasks then go behind busy workers, kDepth deep at most, as nothing else would send
//     them while it is blocked).
//   While any task is queued or in flight the workers' ports are ref'd: the program waits for its work; an idle
//     pool keeps nothing alive (its workers are daemons).
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import {
  bug,
  deserializeError,
  deserializeThrown,
  ErrorCode,
  ProcessError,
  TimeoutError,
  WorkerLostError,
} from '../errors.ts';
import { abort, commit, type Captured } from '../handles.ts';
import { configureProcess, kNamePrefix, Process } from '../process.ts';
import { postBufferedPuts } from '../context.ts';
import { beforeBlocking } from '../shared-wait.ts';
import { postRepairingPorts } from '../wire/ports.ts';
import { poolRuntime } from '../runtime.ts';
import { batchByteLength, sliceItems } from '../wire/batch.ts';
import { BatchReader } from '../wire/decode.ts';
import type { Batch } from '../wire/format.ts';
import {
  kProgressCells,
  kProgressChunk,
  kProgressIndex,
  kProgressRunning,
  PoolOp,
  type FromWorker,
  type ResultsMessage,
  type ToWorker,
} from './protocol.ts';
import type { PoolWorkerArgs } from './worker.ts';

/** What a call does with the outcome of each of its tasks (`index`: the task's place in the call). */
export interface Call {
  settle(index: number, ok: boolean, value: unknown): void;
  /** Settles tasks [start, start + values.length): each with its value, or with its error in `errors`. */
  settleRun?(start: number, values: unknown[], errors: Map<number, unknown> | null): void;
  /** Told the size of each run of results that comes for it, before they are settled (an imap's window). */
  resultBytes?(bytes: number, n: number): void;
  /** False once the call no longer wants its tasks run (aborted, stopped early, all answered): its queued ones are dropped. */
  readonly live: boolean;
}

/** Tasks of one function, their arguments captured into `batch`, in the order they were submitted. */
export interface Job {
  fn: string;
  star: boolean;
  batch: Batch;
  /** Item i is task `base + i` of `calls` (one call), or task 0 of `calls[i]`. */
  calls: Call | Call[];
  base: number;
  /** The next item to dispatch. */
  next: number;
  /** One task at a time, to a worker that runs nothing else. */
  alone: boolean;
  /** Per task, from when it starts (alone jobs). */
  timeout: number;
  /** At least this many tasks per chunk (the call's chunksize). */
  minChunk: number;
  /** Handles or buffers the batch moves (alone jobs): committed when sent, given back (aborted) if never sent. */
  captured?: Captured;
  /** `captured` was committed or aborted. */
  handedOver?: boolean;
}

interface Chunk {
  id: number;
  job: Job;
  from: number;
  to: number;
  /** Tasks of [from, to) settled so far, from the start. */
  answered: number;
  /** Settled by a timeout or an abort while its worker was being stopped. */
  stopped: boolean;
  /** Its call no longer wants it (cancel()): its results are dropped, and its worker stopped once it runs it. */
  cancelled: boolean;
  /** Cancelled by a call that lets what was sent run to its end (an imap its consumer left): not stopped. */
  runsOn: boolean;
  timer: NodeJS.Timeout | undefined;
  /** When it was sent (performance.now()). */
  sentAt: number;
}

interface Slot {
  process: Process<string>;
  port: MessagePort;
  progress: Int32Array;
  chunks: Chunk[];
  /** Tasks sent to it, ever (maxtasksperchild). */
  sent: number;
  ready: boolean;
  /** Sent no more work: told to stop (Stop), or stopped. */
  stopping: boolean;
  /** Stopped by the pool (a timeout, an abort, a cancel): a task of another call it was running did not fail. */
  killed: boolean;
  /** Called before it is stopped and when it exits (see SchedulerOptions.starting). */
  retire?: () => void;
}

/** Chunks a worker holds at once behind a short chunk: one running, one waiting, so that it never waits for the next. */
const kDepth = 2;
/** A chunk expected (by its function's cost so far) to take less than this is short: another may wait behind it. */
const kShortChunkMs = 20;
/** Aim for chunks of about this much work, once the function's cost is known. */
const kChunkMs = 4;
/** A job's last tasks are shared among the workers down to chunks of about this much work, no finer. */
const kTailMs = 1;
/** The first chunk of a function whose cost is not known yet: its tasks may be long. */
const kFirstChunk = 1;
/** Workers that exit before they are ready, in a row, before the pool gives up (its initializer exits). */
const kStartFailures = 3;

export interface SchedulerOptions {
  /**
   * Runs each worker's start (shared ends in initargs hand out an end of theirs only then); returns what to
   * call before the worker is stopped, and when it exits.
   */
  starting?: (start: () => void) => () => void;
  /** Submits what the caller holds back for a moment (a batch of applies): called before this thread blocks. */
  submitPending?: () => void;
  module: string;
  processes: number;
  initializer: string | null;
  initargs: readonly unknown[];
  maxtasksperchild: number | undefined;
  resourceLimits: object | undefined;
  name: string;
}

export class Scheduler {
  readonly #options: SchedulerOptions;
  readonly #slots = new Set<Slot>();
  readonly #queue: Job[] = [];
  /** Chunks in flight, by id. */
  readonly #chunks = new Map<number, { chunk: Chunk; slot: Slot }>();
  /** Milliseconds per task, by function (a moving average). */
  readonly #cost = new Map<string, number>();
  #nextChunkId = 1;
  /** Workers that exited before they were ready since one last was. */
  #startFailures = 0;
  #state: 'running' | 'closing' | 'terminated' = 'running';
  /** Why the pool cannot run anything (a module that does not load, an initializer that throws). */
  #broken: Error | undefined;
  #allExited: { promise: Promise<void>; resolve: () => void };
  /** Set while some task is queued or in flight (see #updateRef). */
  #keepAlive: NodeJS.Timeout | undefined;

  constructor(options: SchedulerOptions) {
    this.#options = options;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    this.#allExited = { promise, resolve };
    schedulers.add(new WeakRef(this));
    // The first workers start now, so that the first task does not wait for them; a failure to start one
    // (no such module, no isMainThread guard) is the constructor's.
    try {
      for (let i = 0; i < options.processes; i++) this.#startWorker(true);
    } catch (error) {
      for (const slot of this.#slots) {
        slot.retire?.();
        slot.process.terminate();
      }
      throw error;
    }
  }

  get processes(): number {
    return this.#options.processes;
  }

  /** Why submitting fails, if it does: the pool closed, terminated, or broken. */
  get refusal(): Error | undefined {
    return this.#broken;
  }

  /** Queues `job` (its arguments already captured) and dispatches what it can. */
  submit(job: Job): void {
    if (this.#broken !== undefined) {
      this.#failJob(job, this.#broken);
      return;
    }
    // The pool closes the scheduler only once its imaps submitted all of their input: nothing comes later.
    if (this.#state !== 'running') {
      this.#failJob(job, bug(`a task was submitted to a ${this.#state} scheduler`));
      return;
    }
    this.#queue.push(job);
    // A worker this thread thinks busy may have finished while the thread was blocked (a ...Sync wait) and its
    // results wait unread on its port: read them now, so that a call after a blocking wait still goes out at
    // once (README: a Pool schedules on its creator's event loop).
    if (this.#freeSlot(job) === undefined) this.#readPosted();
    this.#pump();
  }

  /**
   * This thread is about to block (a ...Sync wait), and nothing is dispatched until its event loop turns again:
   * what the workers posted is read now, and tasks still queued go behind a busy worker (within kDepth) rather
   * than wait for the thread, so that a blocking wait for what a queued task does ends. A task that needs an
   * idle worker (a timeout, a signal, arguments that move things) still waits.
   */
  beforeBlocking(): void {
    if (this.#state === 'terminated' || this.#broken !== undefined) return;
    this.#options.submitPending?.();
    this.#readPosted();
    this.#pump();
    this.#pump((job) => this.#slotBehind(job));
  }

  /**
   * A worker that `job` may go behind though it is busy (beforeBlocking()): the least loaded, kDepth deep at
   * most, not one running a task alone. None for a job that needs an idle or a ready worker.
   */
  #slotBehind(job: Job): Slot | undefined {
    if (job.alone || movesThings(job)) return undefined;
    let best: Slot | undefined;
    for (const slot of this.#slots) {
      if (slot.stopping || this.#quota(slot) <= 0 || slot.chunks.length >= kDepth) continue;
      if (slot.chunks.length > 0 && slot.chunks[0]!.job.alone) continue;
      if (best === undefined || slot.chunks.length < best.chunks.length) best = slot;
    }
    return best;
  }

  /** Takes in what the workers posted and this thread has not read yet, without waiting for the event loop. */
  #readPosted(): void {
    for (const slot of [...this.#slots]) {
      for (let m = receiveMessageOnPort(slot.port); m !== undefined; m = receiveMessageOnPort(slot.port)) {
        this.#onMessage(slot, m.message as FromWorker);
        if (!this.#slots.has(slot)) break;
      }
    }
  }

  /**
   * A call no longer wants its tasks: those queued are dropped, and its chunks in flight are `cancelled`. A
   * worker running one is stopped (and replaced); one with a cancelled chunk waiting behind another call's is
   * stopped when it gets to it (#chunkDone), not before: that would stop the other call's task. With `stop`
   * false (a consumer that left an imap, as Python lets the tasks it submitted run), what was sent runs on.
   */
  cancel(call: Call, stop = true): void {
    // Its queued jobs go now, not once they reach the head of the queue: what their arguments carry is given
    // back at once (a pipe end is usable, and sendable, here again).
    for (let i = this.#queue.length - 1; i >= 0; i--) {
      const job = this.#queue[i]!;
      if (jobLive(job)) continue;
      this.#queue.splice(i, 1);
      giveBack(job);
    }
    for (const slot of this.#slots) {
      for (const chunk of slot.chunks) {
        if (!chunkHas(chunk, call) || chunkLive(chunk)) continue;
        chunk.cancelled = true;
        chunk.runsOn ||= !stop;
      }
      this.#stopIfCancelled(slot, chunkRunningOn(slot));
    }
    this.#pump();
  }

  /**
   * Stops `slot`'s worker if `chunk`, which it runs, was cancelled and has tasks left to run. Also a worker told
   * to stop once its work is done (maxtasksperchild): the cancelled task may never end.
   */
  #stopIfCancelled(slot: Slot, chunk: Chunk | undefined): void {
    if (chunk === undefined || !chunk.cancelled || chunk.runsOn || slot.killed || !this.#slots.has(slot)) return;
    if (ranWhole(slot, chunk)) return; // its last results are on their way: nothing to stop
    chunk.stopped = true;
    this.#stop(slot);
  }

  /** No more submissions: workers exit once the queued and running tasks are done. */
  close(): void {
    if (this.#state !== 'running') return;
    this.#state = 'closing';
    this.#pump();
  }

  /** Stops every worker now; every task not settled fails with `error`. */
  terminate(error: Error): void {
    if (this.#state === 'terminated') return;
    this.#state = 'terminated';
    for (const job of this.#queue.splice(0)) this.#failJob(job, error);
    for (const { chunk } of this.#chunks.values()) this.#failChunk(chunk, error);
    this.#chunks.clear();
    for (const slot of this.#slots) {
      slot.chunks = [];
      slot.retire?.();
      slot.process.terminate();
    }
    if (this.#slots.size === 0) this.#allExited.resolve();
    this.#updateRef();
  }

  /** Resolves once every worker has exited for good (after close() or terminate()); keeps nothing alive. */
  get allExited(): Promise<void> {
    return this.#allExited.promise;
  }

  /**
   * Resolves once every worker has exited for good (after close() or terminate()). While it waits it keeps the
   * program alive (workers are daemons: without this, a program awaiting join() would just end).
   */
  exited(): Promise<void> {
    if (this.#slots.size === 0) return this.#allExited.promise;
    const keepAlive = setInterval(() => {}, 1 << 30);
    return this.#allExited.promise.finally(() => clearInterval(keepAlive));
  }

  // --- workers ------------------------------------------------------------------------------------------

  #startWorker(initial = false): void {
    const o = this.#options;
    const { port1, port2 } = new MessageChannel();
    const progress = new Int32Array(new SharedArrayBuffer(kProgressCells * Int32Array.BYTES_PER_ELEMENT));
    const args: PoolWorkerArgs = [port2, progress, o.initializer, [...o.initargs]];
    // Named `${o.name}-N` from the thread's process count, as Python names its pool workers (unique across pools).
    const worker = new Process({
      target: '(pool worker)',
      module: o.module,
      daemon: true,
      args,
      ...(o.resourceLimits === undefined ? {} : { resourceLimits: o.resourceLimits }),
      ...{ [kNamePrefix]: o.name },
    });
    const slot: Slot = {
      process: worker,
      port: port1,
      progress,
      chunks: [],
      sent: 0,
      ready: false,
      stopping: false,
      killed: false,
    };
    configureProcess(worker, poolRuntime, [port2], (code, stopped) => this.#onExit(slot, code, stopped));
    try {
      if (o.starting === undefined) worker.start();
      else slot.retire = o.starting(() => worker.start());
    } catch (error) {
      port1.close();
      if (initial) throw error;
      this.#break(error as Error);
      return;
    }
    this.#slots.add(slot);
    port1.on('message', (message: FromWorker) => this.#onMessage(slot, message));
    port1.unref();
  }

  #onMessage(slot: Slot, message: FromWorker): void {
    switch (message.op) {
      case PoolOp.Ready:
        slot.ready = true;
        this.#startFailures = 0;
        for (const chunk of slot.chunks) this.#armTimeout(chunk, slot);
        this.#pump(); // a job that moves things may have waited for a ready worker
        return;
      case PoolOp.InitFailed: {
        const cause = deserializeError(message.error);
        this.#break(
          new ProcessError(`the pool's initializer failed: ${cause.message}`, ErrorCode.PoolInitializer, { cause }),
        );
        return;
      }
      case PoolOp.Results:
        this.#onResults(slot, message);
        return;
      default: {
        const unknown: never = message;
        process.emitWarning(bug(`pool: unknown message ${JSON.stringify(unknown)} from a worker`));
      }
    }
  }

  #onResults(slot: Slot, message: ResultsMessage): void {
    const entry = this.#chunks.get(message.id);
    if (entry === undefined) return; // a chunk settled otherwise meanwhile (stopped, terminated)
    const { chunk } = entry;
    const n = message.batch.n;
    if (message.from !== chunk.answered) {
      process.emitWarning(bug(`pool: results for ${message.from} of chunk ${message.id}, expected ${chunk.answered}`));
    }
    // Decoded first, then settled as one run: a map's thousands of results cost one call, not one each.
    let errors: Map<number, unknown> | null = null;
    for (const [i, failure] of message.failures ?? []) (errors ??= new Map()).set(i, deserializeThrown(failure));
    const values = new Array<unknown>(n);
    const reader = new BatchReader(message.batch);
    for (let i = 0; i < n; i++) {
      if (errors?.has(i)) continue;
      try {
        values[i] = reader.item(i);
      } catch (error) {
        (errors ??= new Map()).set(i, error);
      }
    }
    const start = chunk.from + chunk.answered;
    chunk.answered += n;
    const calls = chunk.job.calls;
    if (!Array.isArray(calls)) calls.resultBytes?.(batchByteLength(message.batch), n);
    if (!Array.isArray(calls) && calls.settleRun !== undefined) calls.settleRun(chunk.job.base + start, values, errors);
    else {
      for (let i = 0; i < n; i++) {
        if (errors?.has(i)) settleTask(chunk.job, start + i, false, errors.get(i));
        else settleTask(chunk.job, start + i, true, values[i]);
      }
    }
    if (n > 0 && message.ms > 0) {
      const per = message.ms / n;
      const old = this.#cost.get(chunk.job.fn);
      this.#cost.set(chunk.job.fn, old === undefined ? per : 0.7 * old + 0.3 * per);
    }
    if (message.done || chunk.answered >= chunk.to - chunk.from) this.#chunkDone(slot, chunk);
    this.#pump();
  }

  #chunkDone(slot: Slot, chunk: Chunk): void {
    if (chunk.timer !== undefined) clearTimeout(chunk.timer);
    this.#chunks.delete(chunk.id);
    const i = slot.chunks.indexOf(chunk);
    if (i !== -1) slot.chunks.splice(i, 1);
    this.#stopIfCancelled(slot, slot.chunks[0]); // the worker went on to it
  }

  /** A worker exited (its tasks done and stopped, or it died): settle or requeue what it had, replace it. */
  #onExit(slot: Slot, code: number, stopped: boolean): void {
    slot.retire?.();
    this.#slots.delete(slot);
    // What it posted before it exited and this thread has not read yet (results, its initializer's failure)
    // is on the port now: read it before the port closes, as its exit may come first.
    for (let m = receiveMessageOnPort(slot.port); m !== undefined; m = receiveMessageOnPort(slot.port))
      this.#onMessage(slot, m.message as FromWorker);
    slot.port.close();
    const runningChunk =
      Atomics.load(slot.progress, kProgressRunning) === 1 ? Atomics.load(slot.progress, kProgressChunk) : -1;
    const runningIndex = Atomics.load(slot.progress, kProgressIndex);
    const requeue: Job[] = [];
    // What killed it, when the platform said (out of heap, an uncaught error), as the error's cause.
    const cause = slot.process.error;
    const died = (why: string) =>
      new WorkerLostError(
        `worker ${slot.process.name} (pid ${slot.process.pid}) died (exit code ${code}) ${why}`,
        cause === undefined ? undefined : { cause },
      );
    for (const chunk of slot.chunks) {
      if (chunk.timer !== undefined) clearTimeout(chunk.timer);
      this.#chunks.delete(chunk.id);
      // Settled by whoever stopped it, or nobody wants its results.
      if (chunk.stopped || chunk.cancelled || this.#state === 'terminated') continue;
      let start = chunk.from + chunk.answered;
      if (movesThings(chunk.job)) {
        // What its arguments moved went to the dead worker: the task cannot be sent again.
        if (start < chunk.to) {
          const when = chunk.id === runningChunk ? 'while running this task' : 'before this task started';
          const why = `${when}; what its arguments moved (transferred buffers, ports, handles) went with it`;
          settleTask(chunk.job, start, false, died(why));
        }
        continue;
      }
      // Stopped by the pool for another chunk's sake (it moved on to this one just then): nothing failed here.
      if (chunk.id === runningChunk && runningIndex >= chunk.answered && !slot.killed) {
        const lost = chunk.from + runningIndex;
        // Its tasks before the one that was running finished, but their results died with the worker.
        if (lost > start) requeue.push(subJob(chunk.job, start, lost));
        settleTask(chunk.job, lost, false, died(slot.ready ? 'while running this task' : 'before it was ready'));
        start = lost + 1;
      }
      if (start < chunk.to) requeue.push(subJob(chunk.job, start, chunk.to));
    }
    slot.chunks = [];
    // Its initializer's failure, read just above as it exited, broke the pool: nothing may wait for a worker.
    if (this.#broken !== undefined) for (const job of requeue) this.#failJob(job, this.#broken);
    else this.#queue.unshift(...requeue);
    // A worker sends Ready (or its initializer's failure) before it reads anything, a Stop included: one that
    // exits before it was ready, and was not stopped (terminate() or kill(), by the pool or anyone), failed to start.
    if (!slot.ready && !stopped && this.#state !== 'terminated') {
      // It never got as far as running a task: its module or initializer fails, and so would the next worker's.
      const error = slot.process.error;
      if (error !== undefined)
        this.#break(
          new ProcessError(`the pool's worker could not start: ${error.message}`, ErrorCode.ModuleLoad, {
            cause: error,
          }),
        );
      else if (++this.#startFailures >= kStartFailures)
        // It exits (process.exit() in the initializer): once may be chance, every time would replace it forever.
        this.#break(
          new ProcessError(
            `the pool's workers exit before they are ready: ${kStartFailures} in a row, the last with exit ` +
              `code ${code} (does the initializer or the module call process.exit()?)`,
            ErrorCode.PoolInitializer,
          ),
        );
    }
    // Replaced while the pool runs, or while closing if tasks wait to be dispatched. Not for work in flight on
    // other workers: a worker started then would find nothing to do, be told to stop, and be replaced again,
    // in a loop, until that work ended. If one of those dies, its exit replaces it for its requeued tasks.
    if (
      this.#state !== 'terminated' &&
      this.#broken === undefined &&
      (this.#state === 'running' || this.#queue.length > 0)
    ) {
      this.#startWorker();
    }
    if (this.#slots.size === 0 && this.#state !== 'running') this.#allExited.resolve();
    this.#pump();
  }

  /** The pool cannot run anything: every task queued or in flight fails with `error`, and so will new ones. */
  #break(error: Error): void {
    if (this.#broken !== undefined) return;
    this.#broken = error;
    for (const job of this.#queue.splice(0)) this.#failJob(job, error);
    for (const slot of this.#slots) {
      for (const chunk of slot.chunks) this.#failChunk(chunk, error);
      slot.chunks = [];
      slot.retire?.();
      slot.process.terminate();
    }
    this.#chunks.clear();
    if (this.#state === 'running') this.#state = 'closing';
    if (this.#slots.size === 0) this.#allExited.resolve();
    this.#updateRef();
  }

  /** Stops a worker on purpose (a timeout, an abort): its other tasks are queued again when it exits. */
  #stop(slot: Slot): void {
    slot.stopping = true;
    slot.killed = true;
    slot.retire?.();
    slot.process.terminate();
  }

  // --- dispatch -----------------------------------------------------------------------------------------

  /** Dispatches the queued jobs, in order, each to the worker `choose` names, until it names none. */
  #pump(choose: (job: Job) => Slot | undefined = (job) => this.#freeSlot(job)): void {
    while (this.#queue.length > 0) {
      const job = this.#queue[0]!;
      if (job.next >= job.batch.n || !jobLive(job)) {
        this.#queue.shift();
        giveBack(job);
        continue;
      }
      const slot = choose(job);
      if (slot === undefined) break;
      this.#dispatch(slot, job);
    }
    if (this.#state === 'closing' && this.#queue.length === 0) {
      for (const slot of this.#slots) {
        if (slot.chunks.length === 0 && !slot.stopping) this.#sendStop(slot);
      }
    }
    this.#updateRef();
  }

  /**
   * A worker that can take a chunk of `job` now: ready (started, its initializer run), room in its depth, not
   * stopping; for an alone job, an idle one. Not one still starting: its initializer may take long, or never
   * end, while another worker is free (Python's workers pull tasks once initialized); a task queued here goes
   * out at the next worker's Ready. (Only beforeBlocking() puts tasks behind starting workers.)
   */
  #freeSlot(job: Job): Slot | undefined {
    const { alone } = job;
    let best: Slot | undefined;
    for (const slot of this.#slots) {
      if (slot.stopping || this.#quota(slot) <= 0 || !slot.ready) continue;
      if (slot.chunks.length > 0 && (alone || slot.chunks[0]!.job.alone)) continue;
      if (!this.#roomBehind(slot)) continue;
      if (best === undefined || slot.chunks.length < best.chunks.length) best = slot;
    }
    return best;
  }

  /**
   * Whether `slot` may take another chunk: it is idle, or holds fewer than kDepth, each a batch of several tasks
   * known to be short (its function's tasks so far were) and not out for longer than such a batch takes. A
   * chunk of one task never has another behind it: that task may be the long one, and the round trip it would
   * save is small beside a task too long to batch.
   */
  #roomBehind(slot: Slot): boolean {
    if (slot.chunks.length === 0) return true;
    if (slot.chunks.length >= kDepth) return false;
    const now = performance.now();
    return slot.chunks.every((c) => {
      const cost = this.#cost.get(c.job.fn);
      const size = c.to - c.from;
      return size > 1 && cost !== undefined && cost * size < kShortChunkMs && now - c.sentAt < kShortChunkMs;
    });
  }

  #quota(slot: Slot): number {
    const max = this.#options.maxtasksperchild;
    return max === undefined ? Infinity : max - slot.sent;
  }

  #dispatch(slot: Slot, job: Job): void {
    const remaining = job.batch.n - job.next;
    let size: number;
    if (job.alone) size = 1;
    else {
      const cost = this.#cost.get(job.fn);
      const perTask = Math.max(cost ?? kChunkMs, 1e-6);
      size = cost === undefined ? kFirstChunk : Math.ceil(kChunkMs / perTask);
      // Leave work for every worker, but not in chunks of less than kTailMs of work: finer would not even the
      // workers out, only send more messages (an imap submits its input a window at a time, and its windows'
      // tails were cut down to single tasks: 5,900 messages for 1,000,000 tiny tasks instead of 65 for a map).
      // Never under the call's chunksize.
      size = Math.min(size, Math.max(Math.ceil(remaining / this.#options.processes), Math.ceil(kTailMs / perTask)));
      size = Math.max(size, job.minChunk, 1);
    }
    size = Math.min(size, remaining, this.#quota(slot));
    const from = job.next;
    job.next += size;
    const chunk: Chunk = {
      id: this.#nextChunkId++,
      job,
      from,
      to: from + size,
      answered: 0,
      stopped: false,
      cancelled: false,
      runsOn: false,
      timer: undefined,
      sentAt: performance.now(),
    };
    const batch = sliceItems(job.batch, from, from + size);
    // The batch's own bytes are copied: if the worker dies before the task starts, the task is sent again.
    const transfer = job.captured === undefined ? [] : job.captured.transfer.filter((t) => t !== job.batch.bytes);
    const message: ToWorker = { op: PoolOp.Run, id: chunk.id, fn: job.fn, star: job.star, batch };
    try {
      // A pipe end's port closed from its other side while the task was queued goes as a port whose other
      // side is closed (the task's end reads EOF after what was sent before; wire/ports.ts).
      postBufferedPuts(); // what this thread put before is numbered before what the task puts (context.ts)
      postRepairingPorts(slot.port, message, batch, transfer);
    } catch (error) {
      // Only a batch with carried host objects can fail here (the platform refuses one): those tasks fail.
      for (let i = from; i < from + size; i++) settleTask(job, i, false, error);
      giveBack(job);
      return;
    }
    if (job.captured !== undefined && job.handedOver !== true) {
      job.handedOver = true;
      commit(job.captured, `pool worker ${slot.process.name}`);
    }
    slot.chunks.push(chunk);
    slot.sent += size;
    this.#chunks.set(chunk.id, { chunk, slot });
    // A timeout counts from when the task starts running: at once on a ready worker (an alone task goes only to
    // an idle one), else once the worker is ready (started, its initializer run).
    if (slot.ready) this.#armTimeout(chunk, slot);
    if (this.#quota(slot) <= 0 && this.#options.maxtasksperchild !== undefined) this.#sendStop(slot);
  }

  /** A task with a timeout (a chunk of one): stopped, with its worker, if it is still running when it passes. */
  #armTimeout(chunk: Chunk, slot: Slot): void {
    const job = chunk.job;
    if (!job.alone || job.timeout === Infinity || chunk.timer !== undefined || chunk.stopped) return;
    chunk.timer = setTimeout(
      () => {
        chunk.stopped = true;
        settleTask(
          job,
          chunk.from,
          false,
          new TimeoutError(`the task did not finish within ${job.timeout} ms; its worker was stopped`),
        );
        this.#stop(slot);
      },
      Math.min(job.timeout, 0x7fffffff),
    );
  }

  #sendStop(slot: Slot): void {
    slot.stopping = true;
    const message: ToWorker = { op: PoolOp.Stop };
    slot.port.postMessage(message);
  }

  #failJob(job: Job, error: unknown): void {
    for (let i = job.next; i < job.batch.n; i++) settleTask(job, i, false, error);
    job.next = job.batch.n;
    giveBack(job);
  }

  #failChunk(chunk: Chunk, error: unknown): void {
    if (chunk.timer !== undefined) clearTimeout(chunk.timer);
    if (chunk.stopped) return;
    for (let i = chunk.from + chunk.answered; i < chunk.to; i++) settleTask(chunk.job, i, false, error);
    chunk.answered = chunk.to - chunk.from;
  }

  /**
   * The program stays alive exactly while some task is queued or in flight. A timer does it, not the workers'
   * ports: when a worker dies its port closes at once, and if that port were what kept the program alive, the
   * program could end before the worker's 'exit' (and the replacement it starts) is ever seen.
   */
  #updateRef(): void {
    const busy = this.#state !== 'terminated' && (this.#queue.length > 0 || this.#chunks.size > 0);
    if (busy === (this.#keepAlive !== undefined)) return;
    if (busy) this.#keepAlive = setInterval(() => {}, 1 << 30);
    else {
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
  }
}

/** Settles item `i` of `job` with its call. */
function settleTask(job: Job, i: number, ok: boolean, value: unknown): void {
  if (Array.isArray(job.calls)) job.calls[i]!.settle(0, ok, value);
  else job.calls.settle(job.base + i, ok, value);
}

function jobLive(job: Job): boolean {
  if (!Array.isArray(job.calls)) return job.calls.live;
  for (let i = job.next; i < job.calls.length; i++) if (job.calls[i]!.live) return true;
  return false;
}

/**
 * A job dropped before it was sent: the handles its arguments carry stay where they were (an end of a pipe
 * stays usable in the caller's thread, a shared end's relay end closes), as after a failed post.
 */
function giveBack(job: Job): void {
  if (job.captured === undefined || job.handedOver === true) return;
  job.handedOver = true;
  abort(job.captured);
}

/** Some call still wants a result of the chunk's tasks not answered yet. */
function chunkLive(chunk: Chunk): boolean {
  const calls = chunk.job.calls;
  if (!Array.isArray(calls)) return calls.live;
  for (let i = chunk.from + chunk.answered; i < chunk.to; i++) if (calls[i]!.live) return true;
  return false;
}

/**
 * The chunk `slot`'s worker is on: the first it holds, unless its progress names the second (it finished the
 * first, whose last results have not been read yet).
 */
function chunkRunningOn(slot: Slot): Chunk | undefined {
  const [first, second] = slot.chunks;
  return second !== undefined && Atomics.load(slot.progress, kProgressChunk) === second.id ? second : first;
}

/** `slot`'s worker has run the last task of `chunk` (its progress says so). */
/** Every scheduler of this thread, for beforeBlocking(). */
const schedulers = new Set<WeakRef<Scheduler>>();
beforeBlocking(() => {
  for (const ref of schedulers) {
    const scheduler = ref.deref();
    if (scheduler === undefined) schedulers.delete(ref);
    else scheduler.beforeBlocking();
  }
});

function ranWhole(slot: Slot, chunk: Chunk): boolean {
  const p = slot.progress;
  return (
    Atomics.load(p, kProgressChunk) === chunk.id &&
    Atomics.load(p, kProgressRunning) === 0 &&
    Atomics.load(p, kProgressIndex) === chunk.to - chunk.from - 1
  );
}

function chunkHas(chunk: Chunk, call: Call): boolean {
  const calls = chunk.job.calls;
  if (!Array.isArray(calls)) return calls === call;
  for (let i = chunk.from; i < chunk.to; i++) if (calls[i] === call) return true;
  return false;
}

/** Its arguments move things (buffers, ports, handles) that one post takes away: it can be sent once only. */
function movesThings(job: Job): boolean {
  const captured = job.captured;
  if (captured === undefined) return false;
  return captured.handles.length > 0 || captured.transfer.some((t) => t !== job.batch.bytes);
}

/** Items [from, to) of `job` as a job of their own (tasks to run again). */
function subJob(job: Job, from: number, to: number): Job {
  return {
    ...job,
    batch: sliceItems(job.batch, from, to),
    calls: Array.isArray(job.calls) ? job.calls.slice(from, to) : job.calls,
    base: Array.isArray(job.calls) ? 0 : job.base + from,
    next: 0,
    captured: undefined,
  };
}
