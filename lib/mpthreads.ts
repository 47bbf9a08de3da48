// The entry of the single-file build, dist/lib/mpthreads.js: the package's main export (esbuild writes the
// file, dts-bundle-generator its .d.ts from index.ts). It is the public API, and loading it registers the two
// worker entry points (see entries.ts) without exporting them, so that a worker imports the very module its
// task module imports as 'mpthreads', in one file rather than every file of lib/.
export * from './index.ts';
import './worker-main.ts';
import './queue/hub-entry.ts';
import './pool/worker.ts';
import './redis/expose.ts';
