// A spare worker for TypeScript processes that still need tsx in the worker: those compile.ts cannot compile
// to JavaScript (no esbuild, CommonJS TypeScript, MPTHREADS_COMPILE=0). Such a worker must register tsx
// before it can import anything, which costs ~0.4-0.7 s here (Node 20 starts a loader thread per worker). So
// after starting one we start a spare in the background: it registers tsx, imports the runtime, and waits for
// its BootData. The next such Process.start() takes it and starts at the speed of a plain Worker (Python's
// forkserver does the same for fork costs). Other processes start cold: they are cheap already.
//
// Invariants:
//   At most one spare per thread; it is unref'd until claimed, so it never keeps the program alive.
//   A claimed spare has received exactly one BootData message; a spare that died is forgotten.
//   A spare is claimed only while process.env is what it was when the spare started: a worker gets a copy of
//     the environment when it is made, and a child sees its parent's environment as it is at start().
import type { TransferListItem, Worker } from 'node:worker_threads';
import { Kind, PROTOCOL_TAG, type BootData, type BootMessage } from './protocol.ts';
import { startWorker } from './runtime.ts';

let spare: { worker: Worker; runtime: string; env: string } | undefined;
let scheduled = false;

function startSpare(bootstrapUrl: URL, runtime: string): void {
  const standby = { standby: true, runtime, tsx: true };
  const worker = startWorker(bootstrapUrl, { workerData: { [PROTOCOL_TAG]: standby }, name: 'mpthreads spare' });
  worker.unref();
  const entry = { worker, runtime, env: JSON.stringify(process.env) };
  worker.once('exit', () => {
    if (spare === entry) spare = undefined;
  });
  worker.on('error', () => {
    if (spare === entry) spare = undefined;
  });
  spare = entry;
}

/** Makes sure a spare will be ready for the next TypeScript process. */
export function prepareSpare(bootstrapUrl: URL, runtime: string): void {
  if (spare !== undefined || scheduled) return;
  scheduled = true;
  setImmediate(() => {
    scheduled = false;
    if (spare === undefined) startSpare(bootstrapUrl, runtime);
  });
}

/**
 * Hands `boot` to the spare and returns it, or returns undefined when there is none for this runtime.
 * Throws what postMessage throws (DataCloneError) and keeps the spare then.
 */
export function claimSpare(boot: BootData, transfer: TransferListItem[]): Worker | undefined {
  const entry = spare;
  if (entry === undefined || entry.runtime !== boot.runtime) return undefined;
  if (entry.env !== JSON.stringify(process.env)) {
    // Its environment is out of date: this start goes cold, and the next gets a spare made from now on.
    spare = undefined;
    void entry.worker.terminate();
    return undefined;
  }
  const message: BootMessage = { [PROTOCOL_TAG]: Kind.Boot, boot };
  entry.worker.postMessage(message, transfer);
  spare = undefined;
  entry.worker.removeAllListeners('error');
  entry.worker.removeAllListeners('exit');
  return entry.worker;
}
