// The entry of the build, dist/lib/mpthreads.js: the package's main export (esbuild writes the file,
// dts-bundle-generator its .d.ts from index.ts). It is the public API, and loading it registers the worker
// entry points of a Process and of a pool (see entries.ts) without exporting them, so that a worker imports the
// very module its task module imports as 'mpthreads', in one file rather than every file of lib/. The queue
// hub's worker has a bundle of its own (dist/lib/queue-hub.js, from queue/hub-entry.ts: see runtime.ts).
export * from './index.ts';
import * as api from './index.ts';
import './worker-main.ts';
import './pool/worker.ts';
import './redis/expose.ts';

// The bundler renames a class or function that another binding of the bundle shares its name with, or that
// names itself (`_Connection`, `Value2`). Its keepNames option would fix that by wrapping every function, hot
// paths included (7 MiB more in bench/pipeline-rss.mjs), so the public ones get their own names back here.
for (const [name, value] of Object.entries(api)) {
  if (typeof value === 'function' && value.name !== name) Object.defineProperty(value, 'name', { value: name });
}
