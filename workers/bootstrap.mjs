// The worker entry point: plain JavaScript, because Node 20 cannot start a worker from a .ts file even
// under tsx. It registers tsx when the runtime or the task module is TypeScript that the parent did not
// compile to JavaScript (lib/compile.ts), in this thread, so one module graph serves both; then it imports
// the runtime and calls the entry it registered (lib/entries.ts). It holds no library logic.
import { parentPort, workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Kind, nextMessage, PROTOCOL_TAG } from './messages.mjs';

// A standby (spare) worker gets only { standby, runtime, tsx } now and its BootData later, by message.
/** @type {import('../lib/protocol.ts').BootData & { standby?: boolean }} */
let boot = workerData[PROTOCOL_TAG];

/** tsx is looked up next to this file first, then next to the task module. */
async function registerTsx() {
  let api;
  try {
    api = await import('tsx/esm/api');
  } catch {
    const path = createRequire(boot.module ?? boot.runtime).resolve('tsx/esm/api');
    api = await import(pathToFileURL(path).href);
  }
  api.register();
}

/**
 * Resolves `{ pending: false, tsx: true }` once the parent's heartbeat (compile.ts) has stood still for
 * kStalledMs: the parent is busy in synchronous code and cannot deliver the compiled module meanwhile.
 * @param {SharedArrayBuffer | undefined} buffer
 */
function parentStalled(buffer) {
  const kLookMs = 50;
  const kStalledMs = 500;
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  /** @type {Promise<object>} */
  const promise = new Promise((resolve) => {
    if (buffer === undefined) return;
    const beats = new Int32Array(buffer);
    let last = Atomics.load(beats, 0);
    let since = performance.now();
    timer = setInterval(() => {
      const now = Atomics.load(beats, 0);
      if (now !== last) {
        last = now;
        since = performance.now();
      } else if (performance.now() - since >= kStalledMs) resolve({ pending: false, tsx: true });
    }, kLookMs);
  });
  return { promise, stop: () => clearInterval(timer) };
}

/** The entry points the runtime registered when it loaded (lib/entries.ts). */
const kEntries = Symbol.for('mpthreads.entries');

try {
  // A TypeScript task module still being compiled in the parent: its URL, or `tsx: true`, comes by message;
  // unless the parent blocks its thread first (a ...Sync call), or stays busy in synchronous code, which stop
  // the delivery: then tsx it is.
  if (boot.pending) {
    const compiled = nextMessage(parentPort, Kind.Compiled);
    const wait = boot.blocked ? Atomics.waitAsync(new Int32Array(boot.blocked), 0, 0) : undefined;
    /** @type {Promise<object>} */
    const blocked =
      wait === undefined
        ? new Promise(() => {})
        : Promise.resolve(wait.value).then(() => ({ pending: false, tsx: true }));
    const stalled = parentStalled(boot.heartbeat);
    try {
      const fields = await Promise.race([compiled.then((m) => m.fields), blocked, stalled.promise]);
      boot = { ...boot, .../** @type {object} */ (fields) };
    } finally {
      stalled.stop();
    }
  }
  if (boot.tsx) await registerTsx();
  await import(boot.runtime);
  if (boot.standby) boot = /** @type {any} */ ((await nextMessage(parentPort, Kind.Boot)).boot);
  // A compiled task module carries an inline source map: stack traces then name its .ts files and lines.
  // (Only from here: the runtime's own map would cost every worker ~10 ms to read.)
  if (boot.compiled) process.setSourceMapsEnabled(true);
  const entry = /** @type {any} */ (globalThis)[kEntries]?.[boot.entry];
  if (typeof entry !== 'function') throw new Error(`${boot.runtime} registered no entry "${boot.entry}"`);
  await entry(boot);
} catch (error) {
  // Only reached when the runtime itself cannot load; the runtime reports everything after that.
  const e = /** @type {Error} */ (error);
  parentPort?.postMessage({
    [PROTOCOL_TAG]: Kind.Error,
    error: {
      name: 'ProcessError',
      message: `cannot start target "${boot.target}" of ${boot.module}: ${boot.tsx ? 'TypeScript needs tsx installed; ' : ''}${e?.message}`,
      stack: e?.stack,
    },
  });
  process.exit(1);
}
