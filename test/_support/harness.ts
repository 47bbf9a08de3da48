// Shared test plumbing: every async test gets a deadline (a hang fails instead of freezing CI), and every
// Process a test starts is terminated afterwards, so one failing test cannot leave workers behind.
import type { ResourceLimits } from 'node:worker_threads';
import { suite as uvuSuite, type Test } from 'uvu';
import { Process } from '../../lib/index.ts';

/** Default deadline per test: generous, because a busy 2-core machine can be many times slower than an idle one. */
export const DEFAULT_TIMEOUT = 30_000;

/** Rejects if `promise` has not settled within `ms` (the timer never keeps the program alive). */
export function deadline<T>(promise: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Resolves once `done()` holds, looking every `every` ms; rejects after `ms` and stops looking (a look left
 * running would keep a failed run from exiting).
 */
export async function eventually(done: () => boolean, ms: number, what: string, every = 5): Promise<void> {
  const end = performance.now() + ms;
  while (!done()) {
    if (performance.now() > end) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, every));
  }
}

const started = new Set<Process>();

/** Registers processes so that `cleanup()` terminates any left running. Returns its argument. */
export function track<P extends Process>(p: P): P {
  started.add(p);
  return p;
}

/** Options of `startTask` besides the target and its args. */
export interface TaskOptions {
  name?: string;
  daemon?: boolean;
  resourceLimits?: ResourceLimits;
  /**
   * Track the process for `cleanup()` (the default). Pass false only where the tracking set would distort a
   * measurement (it holds every Process until the next cleanup, e.g. a churn of 1,000 processes measuring heap
   * per process) or for processes that must outlive one test (long-lived agents).
   */
  track?: boolean;
}

/**
 * Starts `target`, exported by the fixture module `module`, in a new Process, tracked so that `cleanup()` (run
 * after each test of a `suite()`) terminates it if the test leaves it running. Returns the started process.
 *   const p = startTask(new URL('../fixtures/queue-tasks.ts', import.meta.url), 'fifoProducer', [conn]);
 */
export function startTask(
  module: URL | string,
  target: string,
  args: readonly unknown[] = [],
  options: TaskOptions = {},
): Process {
  const { track: tracked = true, ...rest } = options;
  const p = new Process({ target, module, args, ...rest });
  if (tracked) track(p);
  p.start();
  return p;
}

/**
 * Queues (or anything else with `close()`) that tests open and that must be closed after each test, so that a
 * failing test leaves no get or put waiting: a waiting call keeps the program alive, and uvu would never
 * exit. With a suite, `closeAll` runs after each of its tests; otherwise call it yourself.
 *   const { open } = openQueues(t);
 *   t('...', async () => { const q = open(new Queue<number>()); ... });
 */
export function openQueues(suite?: { after: { each(fn: () => void): void } }): {
  open<Q extends { close(): void }>(q: Q): Q;
  closeAll(): void;
} {
  const opened = new Set<{ close(): void }>();
  const queues = {
    open<Q extends { close(): void }>(q: Q): Q {
      opened.add(q);
      return q;
    },
    closeAll(): void {
      for (const q of opened) q.close();
      opened.clear();
    },
  };
  suite?.after.each(queues.closeAll);
  return queues;
}

/** Terminates and joins every tracked process still alive. */
export async function cleanup(): Promise<void> {
  const isAlive = (p: Process) => {
    try {
      return p.isAlive();
    } catch {
      return false; // closed: it had exited
    }
  };
  const alive = [...started].filter(isAlive);
  started.clear();
  for (const p of alive) p.terminate();
  await Promise.all(alive.map((p) => deadline(p.join(), 10_000, `terminating ${p.name}`)));
}

/**
 * A uvu suite whose tests each run under a deadline and clean up their processes.
 * Use like uvu's: `const t = suite('Pipe'); t('sends', async () => {...}); t.run();`
 */
export function suite(
  name: string,
  timeout = DEFAULT_TIMEOUT,
): Test & ((name: string, fn: () => unknown, ms?: number) => void) {
  const s = uvuSuite(name);
  s.after.each(cleanup);
  const wrapped = ((title: string, fn: () => unknown, ms = timeout) => {
    s(title, async () => {
      await deadline(Promise.resolve().then(fn), ms as number, `test "${title}"`);
    });
  }) as Test & ((name: string, fn: () => unknown, ms?: number) => void);
  Object.setPrototypeOf(wrapped, s);
  wrapped.run = s.run.bind(s);
  wrapped.before = s.before;
  wrapped.after = s.after;
  wrapped.only = ((title: string, fn: () => unknown, ms = timeout) =>
    s.only(title, async () => {
      await deadline(Promise.resolve().then(fn), ms as number, `test "${title}"`);
    })) as Test['only'];
  wrapped.skip = s.skip;
  return wrapped;
}

/** Asserts that `promise` rejects with an instance of `Ctor`; returns the error for further checks. */
export async function rejects<E extends Error>(
  promise: Promise<unknown>,
  Ctor: abstract new (...a: any[]) => E,
  what = 'promise',
): Promise<E> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof Ctor) return error;
    throw new Error(
      `${what} rejected with ${(error as Error)?.name}: ${(error as Error)?.message}, expected ${Ctor.name}`,
    );
  }
  throw new Error(`${what} resolved, expected a rejection with ${Ctor.name}`);
}

/** Asserts that `fn` throws an instance of `Ctor` synchronously; returns the error. */
export function throws<E extends Error>(fn: () => unknown, Ctor: abstract new (...a: any[]) => E, what = 'call'): E {
  try {
    fn();
  } catch (error) {
    if (error instanceof Ctor) return error;
    throw new Error(`${what} threw ${(error as Error)?.name}: ${(error as Error)?.message}, expected ${Ctor.name}`);
  }
  throw new Error(`${what} did not throw, expected ${Ctor.name}`);
}

/**
 * Runs `fn` with everything written to this thread's stderr captured instead of shown, and returns both. For
 * tests that crash a worker on purpose: Process prints the worker's traceback to stderr (the contract, as in
 * Python), so such a test asserts on the captured text, and a passing run prints no traceback. If `fn`
 * throws, what was captured is written out after all, to help read the failure.
 */
export async function captureStderr<T>(fn: () => Promise<T>): Promise<{ result: T; stderr: string }> {
  const original = process.stderr.write;
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    stderr += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
    callback?.();
    return true;
  }) as typeof process.stderr.write;
  try {
    return { result: await fn(), stderr };
  } catch (error) {
    process.stderr.write = original;
    if (stderr !== '') process.stderr.write(stderr);
    throw error;
  } finally {
    process.stderr.write = original;
  }
}
