// Where a worker finds the library: the bootstrap it starts from, the module it imports, and the entry that
// module registers for it to call (the Process runtime, or the queue hub: see entries.ts). Built as one file
// (dist/lib/mpthreads.js: esbuild defines MPTHREADS_BUNDLE) both modules are that file itself, so a new
// worker loads one module, not seventeen (~30 ms less); run from lib/ under tsx, or from tsc's dist/lib/,
// they are the files beside this one.
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
export const hubRuntime: Runtime = bundled
  ? { url: here, entry: 'hub' }
  : { url: new URL(`./hub-entry${extension}`, here).href, entry: 'hub' };
