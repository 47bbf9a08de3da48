// This thread's connection to the process's hub (hub.ts). The main thread starts the hub the first time a
// queue is made, in it or in any Process (childHubPort). Every Process gets a
// port to the hub in its boot data (childHubPort), so queues made in any thread live in the one hub and
// outlive their creator. A worker started some other way (a plain `new Worker` that imports mpthreads) has
// no port: it starts a hub of its own, whose queues then live as long as that worker.
//
// Invariants:
//   At most one hub port per thread, set once; the hub worker is unref'd and so is every port to it: the hub
//   never keeps the program alive (waiting holders keep their own ports ref'd).
import { isMainThread, MessageChannel, type MessagePort } from 'node:worker_threads';
import { currentProcess } from '../context.ts';
import { PROTOCOL_TAG, type BootData } from '../protocol.ts';
import { compileForWorker, execArgvWithoutTsx } from '../compile.ts';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { bootstrapUrl, hubRuntime, startWorker } from '../runtime.ts';
import { beforeBlocking } from '../shared-wait.ts';
import { deadThreads, recordDeath } from '../sync/threads.ts';
import { Op, type AdoptMessage, type ClientMessage, type CreateMessage, type HolderWire } from './protocol.ts';

// Per thread on globalThis: every copy of the library in a thread shares the one port.
const kHubPort = Symbol.for('mpthreads.hubPort');
const kOwnHub = Symbol.for('mpthreads.ownHub');
const kHubStarting = Symbol.for('mpthreads.hubStarting');
type Global = typeof globalThis & { [kHubPort]?: MessagePort; [kOwnHub]?: boolean; [kHubStarting]?: Int32Array };

function startHub(): MessagePort {
  const { port1, port2 } = new MessageChannel();
  const ready = new Int32Array(new SharedArrayBuffer(4));
  (globalThis as Global)[kHubStarting] = ready;
  const self = currentProcess();
  // From the TypeScript sources (the library run under tsx, not built): compiled as a task module is
  // (compile.ts), so that the hub's worker does not register tsx, which costs it ~0.3 s and ~30 MiB.
  const typescript = hubRuntime.url.endsWith('.ts');
  const compiled = typescript ? compileForWorker(hubRuntime.url, fileURLToPath(hubRuntime.url)) : undefined;
  const boot: BootData = {
    runtime: hubRuntime.url,
    entry: hubRuntime.entry,
    tsx: typescript,
    module: hubRuntime.url,
    target: hubRuntime.entry,
    args: null,
    hub: port2,
    hubReady: ready,
    threads: deadThreads(),
    context: {
      self: { name: 'queue-hub', pid: -1, daemon: true },
      parent: self,
      identity: [],
    },
    ...compiled?.boot,
  };
  // The hub needs no loader flags: its bootstrap registers tsx itself when the library is TypeScript that could
  // not be compiled.
  const worker = startWorker(
    bootstrapUrl,
    { workerData: { [PROTOCOL_TAG]: boot }, transferList: [port2], name: 'mpthreads queue hub' },
    compiled?.execArgv ?? execArgvWithoutTsx(),
  );
  compiled?.deliver(worker);
  worker.unref();
  worker.on('error', (error) => {
    process.stderr.write(
      `mpthreads: the queue hub failed; queues stop delivering (a bug in mpthreads):\n${error?.stack ?? inspect(error)}\n`,
    );
  });
  port1.unref();
  return port1;
}

/**
 * While the hub this thread started is still starting (loading its code: tens of ms, more under tsx): the
 * cell that turns 1 once it serves. Items this thread put are on their way to it, so a get's timeout counts
 * from then: a put, then a get({ timeout }) in a fresh program, must not fail with Empty while qsize() is 1.
 */
function hubStarting(): Int32Array | undefined {
  const g = globalThis as Global;
  const cell = g[kHubStarting];
  if (cell === undefined || Atomics.load(cell, 0) === 0) return cell;
  g[kHubStarting] = undefined;
  return undefined;
}

/** Longest a wait's timeout is held back for the hub to start: a hub that failed to start says so on stderr. */
const kHubStartMs = 10_000;

/** hubStarting() as a promise that settles once the hub serves (at most kHubStartMs); undefined if it does. */
export function hubStarted(): Promise<unknown> | undefined {
  const cell = hubStarting();
  if (cell === undefined) return undefined;
  const started = Atomics.waitAsync(cell, 0, 0, kHubStartMs);
  return started.async ? started.value : undefined;
}

/** @internal Called by a Process's worker at boot with the port its parent got for it. */
export function setHubPort(port: MessagePort): void {
  port.unref();
  (globalThis as Global)[kHubPort] = port;
}

function hubPort(): MessagePort {
  const g = globalThis as Global;
  if (g[kHubPort] === undefined && !isMainThread) g[kOwnHub] = true;
  return (g[kHubPort] ??= startHub());
}

/**
 * This worker started a hub of its own (it was not started by a Process, so it had no port to one): its
 * queues end with it, and its exit has nothing to wait for.
 */
export function ownsHub(): boolean {
  return (globalThis as Global)[kOwnHub] === true;
}

/** Registers a new queue with the hub, with its first holder. */
export function createQueue(cells: Int32Array, joinable: boolean, holder: HolderWire): void {
  const message: CreateMessage = { op: Op.Create, cells, joinable, holder };
  hubPort().postMessage(message, [holder.port as MessagePort]);
}

/** A port to the hub for a child thread about to start, and how to tell the hub which thread it serves. */
export interface ChildHubPort {
  /** The child's end: its BootData's `hub`. */
  readonly port: MessagePort;
  /**
   * The child started as thread `thread`. The hub watches its port: the port closes when the thread dies, so
   * the hub records the death for the locks (sync/threads.ts) even when the thread could not (it ran out of
   * heap) and its parent cannot (it blocks in a ...Sync call).
   */
  started(thread: number): void;
}

/**
 * A port to the hub for a child thread about to start.
 *
 * The main thread starts the hub lazily: most programs that start a Process never make a queue, and the hub's
 * worker costs ~15 ms and ~10 MiB. Until the hub runs, the child's port leads here; the first message on it
 * (a Create or an Adopt) starts the hub, is passed on, and the port itself follows it to the hub, with any
 * messages queued behind it. So a child's first queue waits for this thread's event loop once: before this
 * thread blocks (a ...Sync call, shared-wait.ts), the hub is started and every waiting port handed to it.
 */
export function childHubPort(): ChildHubPort {
  const { port1, port2 } = new MessageChannel();
  const g = globalThis as Global;
  if (g[kHubPort] !== undefined || !isMainThread) {
    const started = (thread: number) => {
      const message: AdoptMessage = { op: Op.Adopt, port: port1, thread };
      hubPort().postMessage(message, [port1]);
    };
    return { port: port2, started };
  }
  const waiting: WaitingPort = {
    thread: undefined,
    onFirst: (first: ClientMessage) => {
      waitingForHub.delete(port1);
      const hub = hubPort();
      hub.postMessage(first, [first.op === Op.Create ? first.holder.port : first.port] as MessagePort[]);
      const adopt: AdoptMessage = { op: Op.Adopt, port: port1, thread: waiting.thread };
      hub.postMessage(adopt, [port1]);
    },
  };
  port1.once('message', waiting.onFirst);
  // A child that exits without a queue closes it: nothing to hand over then (its parent records the death).
  port1.once('close', () => waitingForHub.delete(port1));
  waitingForHub.set(port1, waiting);
  port1.unref();
  return {
    port: port2,
    started: (thread) => {
      waiting.thread = thread;
    },
  };
}

/** A child's hub port that leads here until the hub starts. */
interface WaitingPort {
  /** The child's threadId, once it started. */
  thread: number | undefined;
  /** The listener that forwards the first message. */
  onFirst: (first: ClientMessage) => void;
}
const waitingForHub = new Map<MessagePort, WaitingPort>();
beforeBlocking(() => {
  if (waitingForHub.size === 0) return;
  const hub = hubPort();
  for (const [port, waiting] of waitingForHub) {
    port.off('message', waiting.onFirst);
    const adopt: AdoptMessage = { op: Op.Adopt, port, thread: waiting.thread };
    try {
      hub.postMessage(adopt, [port]); // messages queued on it (a child's Create) go with it
    } catch {
      // Its child exited and the port closed before its 'close' event ran: nobody to serve, a death to record.
      if (waiting.thread !== undefined) recordDeath(waiting.thread);
    }
  }
  waitingForHub.clear();
});
