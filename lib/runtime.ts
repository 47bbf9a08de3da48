// Where a worker finds the library: the bootstrap it starts from, and the module and export it hands over to
// (the Process runtime, or the queue hub). Built as one file (dist/lib/mpthreads.js: esbuild defines
// MPTHREADS_BUNDLE) both are that file itself, so a new worker loads one module, not seventeen (~30 ms less);
// run from lib/ under tsx, they are the files beside this one.
import { Worker, type WorkerOptions } from 'node:worker_threads';
declare const MPTHREADS_BUNDLE: boolean | undefined;

const here = import.meta.url;
const bundled = typeof MPTHREADS_BUNDLE !== 'undefined' && MPTHREADS_BUNDLE;
const extension = here.endsWith('.ts') ? '.ts' : '.js';

export interface Runtime {
  /** URL of the module a worker imports (workers/bootstrap.mjs calls its `entry` export). */
  url: string;
  entry: string;
}

export const bootstrapUrl = new URL('../workers/bootstrap.mjs', here);
export const processRuntime: Runtime = bundled
  ? { url: here, entry: '__processMain' }
  : { url: new URL(`./worker-main${extension}`, here).href, entry: 'main' };
export const hubRuntime: Runtime = bundled
  ? { url: here, entry: '__hubMain' }
  : { url: new URL(`./queue/hub${extension}`, here).href, entry: 'main' };

/**
 * Starts a worker from `url` with the Node options it would inherit, less those that describe the main
 * script itself (`--input-type`, `-e`/`-p` and their code), with which a worker started from a file fails to
 * load. Node refuses an explicit list holding options that are per process (`--expose-gc`, say) rather than
 * ignoring them as it does when it passes them on itself, so those are left out too.
 */
export function startWorker(url: URL, options: WorkerOptions): Worker {
  const args = process.execArgv;
  if (!args.some((a) => a.startsWith('--input-type') || a === '-e' || a === '--eval' || a === '-p' || a === '--print')) {
    return new Worker(url, options); // inherits process.execArgv as Node does
  }
  const execArgv: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith('--input-type=') || a.startsWith('--eval=') || a.startsWith('--print=')) continue;
    if (a === '--input-type' || a === '-e' || a === '--eval' || a === '-p' || a === '--print') { i++; continue; }
    execArgv.push(a);
  }
  try {
    return new Worker(url, { ...options, execArgv });
  } catch (error) {
    if ((error as { code?: string }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw error;
    const invalid = String((error as Error).message).split(':').pop()!.split(',').map((flag) => flag.trim());
    return new Worker(url, { ...options, execArgv: execArgv.filter((a) => !invalid.includes(a)) });
  }
}
