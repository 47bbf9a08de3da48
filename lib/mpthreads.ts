// The entry of the build, dist/lib/mpthreads.js: the package's main export (esbuild writes the file,
// dts-bundle-generator its .d.ts from index.ts). It is the public API, and loading it registers the worker
// entry points of a Process and of a pool (see entries.ts) without exporting them, so that a worker imports the
// very module its task module imports as 'mpthreads', in one file rather than every file of lib/. The queue
// hub's worker has a bundle of its own (dist/lib/queue-hub.js, from queue/hub-entry.ts: see runtime.ts).
export * from './index.ts';
import './worker-main.ts';
import './pool/worker.ts';
import './redis/expose.ts';
