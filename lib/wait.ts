// One way to wait: a promise settled by the first of (the event, the timeout, the abort), with every
// listener and timer removed when it settles, so a finished wait never keeps the program alive.
import { onAbort } from './abort.ts';

/** setTimeout overflows above 2^31-1 ms and fires at once; longer waits are treated as forever. */
const kMaxTimer = 0x7fffffff;

export interface Waiter<T> {
  resolve(value: T): void;
  reject(error: unknown): void;
  /** True once the waiter settled one way or another. */
  readonly settled: boolean;
  /** Set by the event's side once the outcome is decided but not yet delivered: the timeout and the signal no longer settle it. */
  committed: boolean;
  /**
   * Asked when the timeout or the abort comes, for an outcome another thread (or a server) may have decided
   * without this one knowing yet: true commits the waiter (the timeout or abort then does nothing; whoever
   * said true settles it, with `reason()` if nothing came).
   */
  decided?: (reason: () => unknown) => boolean;
}

/**
 * Starts a wait. `arm` registers the waiter where the event will find it and returns how to unregister it;
 * it runs synchronously, before the timeout and abort listeners are armed. With `timeoutFrom`, the timeout
 * counts from when that settles (the abort listener is armed at once).
 */
export function wait<T>(
  arm: (waiter: Waiter<T>) => () => void,
  timeout: number,
  signal: AbortSignal | undefined,
  onTimeout: () => Error,
  timeoutFrom?: Promise<unknown>,
): Promise<T> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let disarm: (() => void) | undefined;
    let unlisten: (() => void) | undefined;
    const aborted = () => {
      if (!waiter.committed && !waiter.decided?.(() => signal!.reason)) waiter.reject(signal!.reason);
    };
    const finish = () => {
      waiter.settled = true;
      if (timer !== undefined) clearTimeout(timer);
      unlisten?.();
      disarm?.();
    };
    const waiter: Waiter<T> & { settled: boolean } = {
      settled: false,
      committed: false,
      resolve(value: T) {
        if (!waiter.settled) {
          finish();
          resolve(value);
        }
      },
      reject(error: unknown) {
        if (!waiter.settled) {
          finish();
          reject(error);
        }
      },
    };
    disarm = arm(waiter);
    if (waiter.settled) {
      disarm();
      return;
    }
    if (timeout !== Infinity && timeout <= kMaxTimer) {
      const startTimer = () => {
        if (waiter.settled) return;
        timer = setTimeout(() => {
          if (!waiter.committed && !waiter.decided?.(onTimeout)) waiter.reject(onTimeout());
        }, timeout);
      };
      if (timeoutFrom === undefined) startTimer();
      else timeoutFrom.then(startTimer, startTimer);
    }
    if (signal !== undefined) unlisten = onAbort(signal, aborted);
  });
}
