// Where a worker finds the library: the bootstrap it starts from, and the module and export it hands over to
// (the Process runtime, or the queue hub). Built as one file (dist/lib/mpthreads.js: esbuild defines
// MPTHREADS_BUNDLE) both are that file itself, so a new worker loads one module, not seventeen (~30 ms less);
// run from lib/ under tsx, or from tsc's dist/lib/, they are the files beside this one.
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
