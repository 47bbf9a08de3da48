// Barrier (Python's multiprocessing.Barrier): `parties` threads wait until all have arrived, then all go on.
// Python's threading.Barrier, ported onto a shared Condition and two shared cells; one round is a generator
// of steps (take the lock, wait for a predicate), so wait() and waitSync() run exactly the same logic.
//
// Invariants (all under the condition's lock):
//   cells[kPhase] is kFilling while threads arrive, kDraining while the last round's threads leave,
//   kResetting while reset() waits for them to leave, kBroken once broken, and kActionDue when the last
//   arrival is not the creating thread and waits for the creator to run the action (a function cannot
//   travel between threads, so the action runs in the creating thread: inside its own wait of the round, or,
//   when it has none, from its event loop, told by a message on its actions channel).
//   cells[kCount] is how many threads are inside wait(); the last one out of a draining or resetting barrier
//   sets it filling again.
//   cells[kHasAction] is 1 while the creating thread can run the action: 0 once its barrier was collected.
import { BroadcastChannel } from 'node:worker_threads';
import { inspect } from 'node:util';
import { BrokenBarrierError, describe, ErrorCode, ProcessError } from '../errors.ts';
import { checkOptions, checkTimeout } from '../options.ts';
import { Condition, kHoldsLock } from './condition.ts';
import { Lock } from './lock.ts';
import {
  checkCount,
  kKind,
  kState,
  checkReachable,
  nestedState,
  newCells,
  Primitive,
  registerPrimitive,
  reviveNested,
  takeAdopted,
  type NestedState,
} from './primitive.ts';
import { isDead, me, threadOf } from './threads.ts';

const kPhase = 0;
const kCount = 1;
const kCreator = 2;
const kHasAction = 3;
/** A number the creating thread gave the barrier: the key of its action there. */
const kSerial = 4;
const kCells = 5;

/** At most this many parties: the waits of a round wait on one Condition. */
const kMaxParties = 256;

const barrierKeys = ['action', 'timeout'] as const;

const creatorGone = 'the barrier broke: the thread that created it, which runs its action, has exited';

/** An action, with what running it from the event loop needs (not the barrier: that must stay collectable). */
interface ActionEntry {
  action: () => void;
  cells: Int32Array;
  condition: Condition;
}

// The actions of the barriers this thread created, by serial: a barrier that travels and comes back is a new
// object, and must still find its action here. An entry leaves when the barrier that made it is collected;
// from then on its rounds run without it (kHasAction 0) rather than wait for it. Kept on globalThis, as every
// copy of the library in a thread must number and find them alike, and listen once.
const kActions = Symbol.for('mpthreads.barrierActions');
interface ThreadActions {
  serials: number;
  entries: Map<number, ActionEntry>;
  /** This thread's actions channel, once it created a barrier with an action. */
  listening: BroadcastChannel | undefined;
}
const actions: ThreadActions = ((globalThis as typeof globalThis & { [kActions]?: ThreadActions })[kActions] ??= {
  serials: 0,
  entries: new Map(),
  listening: undefined,
});
const forget = new FinalizationRegistry<{ serial: number; cells: Int32Array }>(({ serial, cells }) => {
  actions.entries.delete(serial);
  Atomics.store(cells, kHasAction, 0);
});

/** How often (ms) a last arrival waiting for the action looks whether the creating thread died or let it go. */
const kCreatorCheck = 50;

// Each thread that created a barrier with an action listens on a channel of its own, named after it: the last
// arrival of a round that thread is not waiting in asks it there to run the action.
const channelName = (thread: number) => `mpthreads.barrier-actions.${thread}`;
const askers = new Map<number, BroadcastChannel>();

function listenForActions(): void {
  if (actions.listening !== undefined) return;
  const channel = new BroadcastChannel(channelName(threadOf(me)));
  channel.unref(); // a wait for the action keeps the program alive itself
  channel.onmessage = (event) => {
    const entry = actions.entries.get((event as MessageEvent).data as number);
    if (entry !== undefined) void runDueAction(entry);
  };
  actions.listening = channel;
}

/** In the creating thread, from its event loop: runs the action of a round that waits for it, if it still does. */
async function runDueAction({ action, cells, condition }: ActionEntry): Promise<void> {
  await condition.acquire();
  try {
    if (Atomics.load(cells, kPhase) !== kActionDue) return; // run inside a wait of this thread, or broken
    try {
      action();
      Atomics.store(cells, kPhase, kDraining);
    } catch (error) {
      // No wait of this thread to throw it from: the parties get BrokenBarrierError, and this is said here.
      Atomics.store(cells, kPhase, kBroken);
      process.stderr.write(`mpthreads: a Barrier's action threw; the barrier is broken:\n${inspect(error)}\n`);
    }
    condition.notifyAll();
  } finally {
    condition.release();
  }
}

/** Asks thread `creator` to run the action of its barrier `serial` (a no-op if it runs it in a wait). */
function askForAction(creator: number, serial: number): void {
  let channel = askers.get(creator);
  if (channel === undefined) {
    channel = new BroadcastChannel(channelName(creator));
    channel.unref();
    askers.set(creator, channel);
  }
  channel.postMessage(serial);
}

const kFilling = 0;
const kDraining = 1;
const kActionDue = 2;
const kResetting = -1;
const kBroken = -2;

/** Options of `new Barrier()`. */
export interface BarrierOptions {
  /** Runs once per round, before any thread is released, in the thread that created the barrier. */
  action?: () => void;
  /** The timeout of a wait() called without one, in ms. @default Infinity */
  timeout?: number;
}

type Step = { kind: 'acquire' } | { kind: 'wait'; until: () => boolean; timeout: number };

/**
 * A barrier for `parties` threads (Python's `multiprocessing.Barrier`): each `wait` blocks until `parties`
 * waits are in, then all return, each with its arrival index (0 to parties - 1). A wait that times out, an
 * `abort()`, or an action that throws breaks the barrier: every wait in it and after it throws
 * `BrokenBarrierError` until `reset()`. Pass it in `Process`/`Pool` args, or through a pipe or queue.
 */
export class Barrier extends Primitive {
  readonly #cells: Int32Array;
  readonly #condition: Condition;
  readonly #parties: number;
  readonly #timeout: number;

  constructor(parties: number, options?: BarrierOptions) {
    super();
    const adopted = takeAdopted<{
      cells: SharedArrayBuffer;
      condition: NestedState;
      parties: number;
      timeout: number;
    }>();
    if (adopted !== undefined) {
      this.#cells = new Int32Array(adopted.cells);
      this.#condition = reviveNested(adopted.condition);
      this.#parties = adopted.parties;
      this.#timeout = adopted.timeout;
      return;
    }
    this.#parties = checkCount(parties, 'parties', 1);
    if (this.#parties > kMaxParties) throw new RangeError(`parties must be at most ${kMaxParties}, got ${parties}`);
    const o: BarrierOptions = checkOptions(options, 'options', barrierKeys);
    if (o.action !== undefined && typeof o.action !== 'function') {
      throw new TypeError(`options.action must be a function, got ${describe(o.action)}`);
    }
    this.#timeout = checkTimeout(o.timeout);
    this.#condition = new Condition(new Lock());
    this.#cells = newCells(kCells);
    this.#cells[kCreator] = me;
    this.#cells[kHasAction] = o.action === undefined ? 0 : 1;
    if (o.action !== undefined) {
      const serial = ++actions.serials;
      this.#cells[kSerial] = serial;
      actions.entries.set(serial, { action: o.action, cells: this.#cells, condition: this.#condition });
      forget.register(this, { serial, cells: this.#cells });
      listenForActions();
    }
  }

  get [kKind](): string {
    return 'Barrier';
  }

  [kState](): Record<string, unknown> {
    return {
      cells: this.#cells.buffer,
      condition: nestedState(this.#condition),
      parties: this.#parties,
      timeout: this.#timeout,
    };
  }

  get #phase(): number {
    return Atomics.load(this.#cells, kPhase);
  }
  set #phase(phase: number) {
    Atomics.store(this.#cells, kPhase, phase);
  }

  /** The action, in the thread that created the barrier; undefined elsewhere. */
  get #action(): (() => void) | undefined {
    if (Atomics.load(this.#cells, kCreator) !== me) return undefined;
    return actions.entries.get(Atomics.load(this.#cells, kSerial))?.action;
  }

  /** This thread can run the action: it created the barrier with one. */
  get #runsAction(): boolean {
    return this.#action !== undefined;
  }

  /** Waits until all parties have called wait(); resolves with this call's arrival index. */
  async wait(timeout?: number): Promise<number> {
    try {
      return await this.#wait(timeout === undefined ? this.#timeout : checkTimeout(timeout, 'timeout'));
    } catch (error) {
      // Its Condition's wait found that no other thread holds it: say so of the barrier.
      if (!(error instanceof ProcessError) || error.code !== ErrorCode.Deadlock) throw error;
      throw new ProcessError(error.message.replace('wait() on a Condition', 'wait() on a Barrier'), ErrorCode.Deadlock);
    }
  }

  async #wait(timeout: number): Promise<number> {
    const round = this.#round(timeout);
    let input: boolean | undefined;
    let failure: { error: unknown } | undefined;
    for (;;) {
      const next = failure === undefined ? round.next(input as boolean) : round.throw(failure.error);
      failure = undefined;
      if (next.done) return next.value;
      try {
        input =
          next.value.kind === 'acquire'
            ? await this.#condition.acquire()
            : await this.#condition.waitFor(next.value.until, next.value.timeout);
      } catch (error) {
        failure = { error };
      }
    }
  }

  /** As wait(), blocking the thread. */
  waitSync(timeout?: number): number {
    const ms = timeout === undefined ? this.#timeout : checkTimeout(timeout, 'timeout');
    // Unless this arrival completes the round (the others waiting asynchronously in this thread), or the
    // barrier is broken (the round throws BrokenBarrierError at once, as wait() rejects with it).
    if (ms === Infinity && !this.broken && Atomics.load(this.#cells, kCount) + 1 < this.#parties)
      checkReachable(this.#cells, 'Barrier', 'waitSync()');
    const round = this.#round(ms);
    let input: boolean | undefined;
    let failure: { error: unknown } | undefined;
    for (;;) {
      const next = failure === undefined ? round.next(input as boolean) : round.throw(failure.error);
      failure = undefined;
      if (next.done) return next.value;
      try {
        input =
          next.value.kind === 'acquire'
            ? this.#condition.acquireSync()
            : this.#condition.waitForSync(next.value.until, next.value.timeout);
      } catch (error) {
        failure = { error };
      }
    }
  }

  /** One thread's part of a round (threading.Barrier.wait). Yields each wait on the condition. */
  *#round(timeout: number): Generator<Step, number, boolean> {
    yield { kind: 'acquire' };
    try {
      // Wait while a previous round drains or a reset is under way.
      const between = () => this.#phase !== kDraining && this.#phase !== kResetting && this.#phase !== kActionDue;
      if (!between()) yield { kind: 'wait', until: between, timeout: Infinity };
      if (this.#phase < 0) throw new BrokenBarrierError();
      const index = Atomics.add(this.#cells, kCount, 1);
      try {
        if (index + 1 === this.#parties) yield* this.#complete(timeout);
        else yield* this.#awaitOthers(timeout);
        return index;
      } finally {
        const left = Atomics.sub(this.#cells, kCount, 1) - 1;
        if (left === 0 && (this.#phase === kDraining || this.#phase === kResetting)) {
          this.#phase = kFilling;
          this.#condition.notifyAll();
        }
      }
    } finally {
      this.#condition.release();
    }
  }

  /**
   * The last arrival: the action runs (here, or in the creating thread: in its wait of the round, or from its
   * event loop if it has none), then everyone is released.
   */
  *#complete(timeout: number): Generator<Step, void, boolean> {
    if (Atomics.load(this.#cells, kHasAction) === 1 && !this.#runsAction) {
      const creator = threadOf(Atomics.load(this.#cells, kCreator));
      if (isDead(creator)) {
        this.#break();
        throw new BrokenBarrierError(creatorGone);
      }
      this.#phase = kActionDue;
      this.#condition.notifyAll();
      askForAction(creator, Atomics.load(this.#cells, kSerial));
      // A death or a collected action notifies no one: look again every kCreatorCheck ms.
      const end = performance.now() + timeout;
      for (;;) {
        const left = end - performance.now();
        const slice = Math.max(0, Math.min(kCreatorCheck, left));
        if (yield { kind: 'wait', until: () => this.#phase !== kActionDue, timeout: slice }) break;
        if (Atomics.load(this.#cells, kHasAction) === 0) {
          this.#phase = kDraining; // the creating thread let its barrier go: no action to wait for
          this.#condition.notifyAll();
          return;
        }
        if (isDead(creator)) {
          this.#break();
          throw new BrokenBarrierError(creatorGone);
        }
        if (left <= kCreatorCheck) {
          this.#break();
          break;
        }
      }
      if (this.#phase < 0) throw new BrokenBarrierError();
      return;
    }
    this.#runAction();
  }

  /** Any other arrival: wait for the round to complete (and run the action, when it falls to this thread). */
  *#awaitOthers(timeout: number): Generator<Step, void, boolean> {
    const runsAction = this.#runsAction;
    const until = () => this.#phase !== kFilling && !(this.#phase === kActionDue && !runsAction);
    const done = yield { kind: 'wait', until, timeout };
    if (!done) {
      this.#break();
      throw new BrokenBarrierError('the barrier broke: this wait timed out');
    }
    if (this.#phase === kActionDue) this.#runAction();
    if (this.#phase < 0) throw new BrokenBarrierError();
  }

  #runAction(): void {
    try {
      this.#action?.();
      this.#phase = kDraining;
      this.#condition.notifyAll();
    } catch (error) {
      this.#break();
      throw error;
    }
  }

  #break(): void {
    this.#phase = kBroken;
    this.#condition.notifyAll();
  }

  /**
   * Returns the barrier to its empty state; waits in it now throw BrokenBarrierError. Blocks while another
   * thread holds the barrier's lock for a moment.
   */
  reset(): void {
    this.#underLock(() => {
      if (Atomics.load(this.#cells, kCount) > 0) {
        if (this.#phase === kFilling || this.#phase === kBroken) this.#phase = kResetting;
      } else {
        this.#phase = kFilling;
      }
      this.#condition.notifyAll();
    });
  }

  /** Breaks the barrier: every wait in it and after it throws BrokenBarrierError, until reset(). */
  abort(): void {
    this.#underLock(() => this.#break());
  }

  /**
   * Runs `change` holding the barrier's lock. If an async wait() of this thread holds it between two of its
   * steps, blocking would never end: the change is made as soon as that step lets the lock go.
   */
  #underLock(change: () => void): void {
    const run = () => {
      try {
        change();
      } finally {
        this.#condition.release();
      }
    };
    if (this.#condition[kHoldsLock]()) {
      void this.#condition.acquire().then(run);
      return;
    }
    this.#condition.acquireSync();
    run();
  }

  /** The number of threads the barrier waits for. */
  get parties(): number {
    return this.#parties;
  }

  /** The number of threads waiting in the round now. */
  get nWaiting(): number {
    return this.#phase === kFilling ? Atomics.load(this.#cells, kCount) : 0;
  }

  /** True once broken (until reset()). */
  get broken(): boolean {
    return this.#phase === kBroken;
  }
}

registerPrimitive('Barrier', () => new Barrier(1));
