// Listening for an AbortSignal's abort with one listener per signal, however many calls wait on it: a signal
// shared by many calls (one AbortController for a batch of gets, applies or acquires) would otherwise pass
// Node's limit of 10 listeners per EventTarget and print a MaxListenersExceededWarning about a leak that is not one.
//
// Invariant: a signal is in `listening` exactly while its one 'abort' listener is on it and it has not aborted;
// its set holds the calls waiting on it now (each removes itself when it settles).

const listening = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Calls `listener` once when `signal` aborts (on a microtask if it already has: a wait that armed itself after
 * an abort it did not see, such as a poll loop between two commands, must not miss it); returns how to stop
 * listening.
 */
export function onAbort(signal: AbortSignal, listener: () => void): () => void {
  if (signal.aborted) {
    let live = true;
    queueMicrotask(() => {
      if (live) listener();
    });
    return () => {
      live = false;
    };
  }
  let listeners = listening.get(signal);
  if (listeners === undefined) {
    const fresh = new Set<() => void>();
    listeners = fresh;
    listening.set(signal, fresh);
    signal.addEventListener(
      'abort',
      () => {
        listening.delete(signal);
        for (const call of [...fresh]) call();
        fresh.clear();
      },
      { once: true },
    );
  }
  const set = listeners;
  set.add(listener);
  return () => {
    set.delete(listener);
  };
}
