// The entry of the single-file build, dist/lib/mpthreads.js: the package's main export (tsc writes its .d.ts,
// esbuild the file itself). It is the public API plus the two worker entry points, so that a worker imports the
// very module its task module imports as 'mpthreads', in one file instead of seventeen.
export * from './index.ts';
/** @internal Called by workers/bootstrap.mjs in a Process's worker. */
export { main as __processMain } from './worker-main.ts';
/** @internal Called by workers/bootstrap.mjs in the queue hub's worker. */
export { main as __hubMain } from './queue/hub.ts';
