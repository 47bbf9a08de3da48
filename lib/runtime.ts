// Where a worker finds the library: the bootstrap it starts from, the module it imports, and the entry that
// module registers for it to call (the Process runtime, the pool's worker, or the queue hub: see entries.ts).
// Built (dist/lib/mpthreads.js: esbuild defines MPTHREADS_BUNDLE), a Process's and a pool's worker import that
// file itself, so that a new worker loads one module rather than every file of lib/, and the very module its
// task module imports; the hub imports its own small bundle, dist/lib/queue-hub.js. Run from lib/ under tsx,
// they are the files beside this one. And how a worker is started with the right Node options.
import { Worker, type WorkerOptions } from 'node:worker_threads';
import type { EntryName } from './entries.ts';

declare const MPTHREADS_BUNDLE: boolean | undefined;

const here = import.meta.url;
const bundled = typeof MPTHREADS_BUNDLE !== 'undefined' && MPTHREADS_BUNDLE;
const extension = here.endsWith('.ts') ? '.ts' : '.js';

export interface Runtime {
  /** URL of the module a worker imports; loading it registers `entry` (see entries.ts). */
  url: string;
  entry: EntryName;
}

export const bootstrapUrl = new URL('../workers/bootstrap.mjs', here);
export const processRuntime: Runtime = bundled
  ? { url: here, entry: 'process' }
  : { url: new URL(`./worker-main${extension}`, here).href, entry: 'process' };
// The hub's own bundle: it needs 18 KB of the library, and loading the whole of it costs the hub's worker
// ~2 MiB more.
export const hubRuntime: Runtime = bundled
  ? { url: new URL('./queue-hub.js', here).href, entry: 'hub' }
  : { url: new URL(`./queue/hub-entry${extension}`, here).href, entry: 'hub' };

export const poolRuntime: Runtime = bundled
  ? { url: here, entry: 'pool' }
  : { url: new URL(`./pool/worker${extension}`, here).href, entry: 'pool' };

/** Options that describe the main script itself: a worker started from a file fails to load with them. */
function describesMainScript(flag: string): 'alone' | 'with-value' | false {
  if (flag.startsWith('--input-type=') || flag.startsWith('--eval=') || flag.startsWith('--print=')) return 'alone';
  if (flag === '--input-type' || flag === '-e' || flag === '--eval' || flag === '-p' || flag === '--print')
    return 'with-value';
  return false;
}

/**
 * Starts a worker from `url` with `execArgv` (default: this thread's Node options, as Node passes them on),
 * less the options that describe the main script itself (`--input-type`, `-e`/`-p` and their code). Node
 * refuses an explicit list holding options that are per process (`--expose-gc`, `--max-old-space-size`)
 * rather than ignoring them as it does when it passes them on itself: those it names are left out, and the
 * worker started again.
 */
export function startWorker(url: URL, options: WorkerOptions, execArgv?: readonly string[]): Worker {
  const from = execArgv ?? process.execArgv;
  const kept: string[] = [];
  for (let i = 0; i < from.length; i++) {
    const described = describesMainScript(from[i]!);
    if (described === 'with-value') i++;
    else if (described === false) kept.push(from[i]!);
  }
  if (execArgv === undefined && kept.length === from.length) return new Worker(url, options); // inherits, as Node does
  try {
    return new Worker(url, { ...options, execArgv: kept });
  } catch (error) {
    if ((error as { code?: string }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw error;
    const refused = String((error as Error).message)
      .split(':')
      .pop()!
      .split(',')
      .map((flag) => flag.trim());
    return new Worker(url, { ...options, execArgv: kept.filter((flag) => !refused.includes(flag)) });
  }
}
