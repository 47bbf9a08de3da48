// The async waiters of one thread on one lock or semaphore take turns: only the first waits on the shared cell,
// the others wait here for their turn. A release wakes every waiter on the cell (lock.ts says why), so with
// every async function of a thread on the cell, n waits woke n times each: 1,000 async acquires of one Lock in
// one thread took 6.1 s. In turns, a release wakes one wait per thread.
//
// Invariants:
//   #taken is true while some caller holds the turn (between take() resolving true and its pass()).
//   #line holds the callers waiting for it, oldest first; one that times out or is aborted leaves it at once.
import { onAbort } from '../abort.ts';

/** setTimeout's longest delay; a longer wait is made of several. */
const kLongestTimer = 2 ** 31 - 1;

/** A caller waiting for its turn: called when it gets it. */
type Grant = () => void;

export class Turns {
  #taken = false;
  readonly #line = new Set<Grant>();

  /** No caller has the turn: nobody of this thread waits, so a new one may try the cell before it joins. */
  get idle(): boolean {
    return !this.#taken;
  }

  /**
   * Resolves true when the caller has the turn, false when `deadline` (a `performance.now()` time) passes first;
   * rejects with the signal's reason on abort. A caller that got the turn must pass() it on.
   */
  take(deadline: number, signal: AbortSignal | undefined): Promise<boolean> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (!this.#taken) {
      this.#taken = true;
      return Promise.resolve(true);
    }
    if (deadline <= performance.now()) return Promise.resolve(false);
    return new Promise<boolean>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let unlisten: (() => void) | undefined;
      const leave = (): void => {
        this.#line.delete(grant);
        clearTimeout(timer);
        unlisten?.();
      };
      const grant: Grant = () => {
        leave();
        resolve(true);
      };
      this.#line.add(grant);
      // The caller with the turn keeps the event loop alive while it waits; a timer only bounds this wait.
      const arm = (): void => {
        const left = deadline - performance.now();
        if (left > 0) timer = setTimeout(arm, Math.min(left, kLongestTimer)).unref();
        else {
          leave();
          resolve(false);
        }
      };
      if (deadline !== Infinity) arm();
      if (signal !== undefined) {
        unlisten = onAbort(signal, () => {
          leave();
          reject(signal.reason);
        });
      }
    });
  }

  /** The turn ends: the oldest caller waiting gets it. */
  pass(): void {
    const next = this.#line.values().next();
    if (next.done) this.#taken = false;
    else next.value();
  }
}
