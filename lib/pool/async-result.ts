// AsyncResult: Python's multiprocessing.pool.AsyncResult over a Promise. `get(timeout)` gives up waiting without
// cancelling the task (as in Python); `ready()` and `successful()` look without waiting.
import { ErrorCode, ProcessError, TimeoutError } from '../errors.ts';
import { checkTimeout } from '../options.ts';

/** Where a call stands. */
export type Outcome = 'pending' | 'fulfilled' | 'rejected';

/** setTimeout overflows above 2^31-1 ms and fires at once; longer waits are treated as forever. */
const kMaxTimer = 0x7fffffff;

/**
 * The result of `applyAsync`, `mapAsync` and `starmapAsync`: a `PromiseLike`, so `await` works, plus Python's
 * `get(timeout)`, `wait(timeout)`, `ready()` and `successful()`.
 */
export class AsyncResult<R> implements PromiseLike<R> {
  readonly #promise: Promise<R>;
  /** The call's outcome, known synchronously: ready() is true the moment the call settles, even inside it. */
  readonly #outcome: () => Outcome;

  /** @internal The pool makes these. */
  constructor(promise: Promise<R>, outcome: () => Outcome) {
    this.#promise = promise;
    this.#outcome = outcome;
    // A failure nobody asks for is not an unhandled rejection, as an ignored AsyncResult is silent in Python.
    promise.catch(() => {});
  }

  // biome-ignore lint/suspicious/noThenProperty: the spec makes an AsyncResult PromiseLike, so that `await` works
  then<A = R, B = never>(
    onfulfilled?: ((value: R) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.#promise.then(onfulfilled, onrejected);
  }

  /**
   * The result once it is ready; rejects with what the task threw, or with `TimeoutError` when `timeout` ms
   * pass first (the task goes on: a later `get()` can still have it).
   */
  get(timeout?: number): Promise<R> {
    let ms: number;
    try {
      ms = checkTimeout(timeout, 'timeout');
    } catch (error) {
      return Promise.reject(error);
    }
    if (ms === Infinity || ms > kMaxTimer || this.#outcome() !== 'pending') return this.#promise;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(`the result was not ready within ${ms} ms`)), ms);
    });
    return Promise.race([this.#promise, timedOut]).finally(() => clearTimeout(timer));
  }

  /**
   * Resolves once the result is ready, or when `timeout` ms pass first; rejects only for a bad `timeout`
   * (Python's `wait`).
   */
  async wait(timeout?: number): Promise<void> {
    checkTimeout(timeout, 'timeout');
    await this.get(timeout).catch(() => {});
  }

  /** True once the call has settled, one way or the other. */
  ready(): boolean {
    return this.#outcome() !== 'pending';
  }

  /** True if the call succeeded; throws a ProcessError while it is not ready (Python raises ValueError). */
  successful(): boolean {
    const outcome = this.#outcome();
    if (outcome === 'pending') throw new ProcessError('the result is not ready yet', ErrorCode.NotReady);
    return outcome === 'fulfilled';
  }

  /** @internal */
  get [Symbol.toStringTag](): string {
    return 'AsyncResult';
  }
}
