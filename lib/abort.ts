// Listening for an AbortSignal's abort with one listener per signal, however many calls wait on it: a signal
// shared by many calls (one AbortController for a batch of gets, applies or acquires) would otherwise pass
// Node's limit of 10 listeners per EventTarget and print a MaxListenersExceededWarning about a leak that is not one.
//
// Invariant: a signal is in `listening` exactly while its one 'abort' listener is on it, and then its entry
// holds the calls waiting on it now. The last call to stop listening removes the listener too: Node keeps a
// signal that has abort listeners alive (AbortSignal.any(), AbortSignal.timeout()), so one left on would keep
// every per-call signal for good.

interface Listening {
  readonly calls: Set<() => void>;
  readonly listener: () => void;
}

const listening = new WeakMap<AbortSignal, Listening>();

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
  let entry = listening.get(signal);
  if (entry === undefined) {
    const calls = new Set<() => void>();
    const fresh: Listening = {
      calls,
      listener: () => {
        listening.delete(signal);
        for (const call of [...calls]) call();
        calls.clear();
      },
    };
    entry = fresh;
    listening.set(signal, fresh);
    signal.addEventListener('abort', fresh.listener, { once: true });
  }
  const { calls } = entry;
  // Each registration its own function: the same listener may wait twice on one signal.
  const call = () => listener();
  calls.add(call);
  return () => {
    if (!calls.delete(call) || calls.size > 0 || listening.get(signal) !== entry) return;
    listening.delete(signal);
    signal.removeEventListener('abort', entry.listener);
  };
}
