// Waiting on a counter in shared memory (queue size, unfinished tasks) without blocking the thread:
// Atomics.waitAsync, re-checked in a loop because a wake-up is only a hint. A pending waitAsync does not keep
// Node's event loop alive, so a timer holds it open while someone waits.
const kForever = 2 ** 30;

/**
 * Resolves true once `ready(cells[index])` holds, false when `timeout` ms pass first; rejects with the
 * signal's reason on abort. Writers must `Atomics.notify(cells, index)` after changing the cell.
 */
export async function waitForCell(
  cells: Int32Array,
  index: number,
  ready: (value: number) => boolean,
  timeout: number,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  if (ready(Atomics.load(cells, index))) return true;
  if (signal?.aborted) throw signal.reason;
  const deadline = timeout === Infinity ? Infinity : performance.now() + timeout;
  const keepAlive = setInterval(() => {}, kForever);
  let onAbort: (() => void) | undefined;
  const aborted =
    signal === undefined
      ? undefined
      : new Promise<never>((_, reject) => {
          onAbort = () => reject(signal.reason);
          signal.addEventListener('abort', onAbort, { once: true });
        });
  aborted?.catch(() => {});
  try {
    for (;;) {
      const value = Atomics.load(cells, index);
      if (ready(value)) return true;
      const remaining = deadline - performance.now();
      if (remaining <= 0) return false;
      const result = Atomics.waitAsync(
        cells,
        index,
        value,
        remaining === Infinity ? undefined : Math.min(remaining, kForever),
      );
      if (result.async) await (aborted === undefined ? result.value : Promise.race([result.value, aborted]));
    }
  } finally {
    clearInterval(keepAlive);
    if (onAbort !== undefined) signal!.removeEventListener('abort', onAbort);
  }
}
