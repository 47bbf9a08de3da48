// This thread's connection to the process's hub (hub.ts). The main thread starts the hub the first time it
// needs it (its first queue, or its first Process: a child must be able to make queues). Every Process gets a
// port to the hub in its boot data (childHubPort), so queues made in any thread live in the one hub and
// outlive their creator. A worker started some other way (a plain `new Worker` that imports mpthreads) has
// no port: it starts a hub of its own, whose queues then live as long as that worker.
//
// Invariants:
//   At most one hub port per thread, set once; the hub worker is unref'd and so is every port to it: the hub
//   never keeps the program alive (waiting holders keep their own ports ref'd).
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { currentProcess } from '../context.ts';
import { PROTOCOL_TAG, type BootData } from '../protocol.ts';
import { execArgvWithoutTsx } from '../compile.ts';
import { bootstrapUrl, hubRuntime, startWorker } from '../runtime.ts';
import { Op, type AdoptMessage, type CreateMessage, type HolderWire } from './protocol.ts';

// Per thread on globalThis: every copy of the library in a thread shares the one port.
const kHubPort = Symbol.for('mpthreads.hubPort');
type Global = typeof globalThis & { [kHubPort]?: MessagePort };

function startHub(): MessagePort {
  const { port1, port2 } = new MessageChannel();
  const self = currentProcess();
  const boot: BootData = {
    runtime: hubRuntime.url,
    entry: hubRuntime.entry,
    tsx: hubRuntime.url.endsWith('.ts'),
    module: hubRuntime.url,
    target: hubRuntime.entry,
    args: null,
    hub: port2,
    context: {
      self: { name: 'queue-hub', pid: -1, daemon: true },
      parent: self,
      identity: [],
    },
  };
  // The hub needs no loader flags: its bootstrap registers tsx itself when the library is TypeScript.
  const worker = startWorker(
    bootstrapUrl,
    { workerData: { [PROTOCOL_TAG]: boot }, transferList: [port2], name: 'mpthreads queue hub' },
    execArgvWithoutTsx(),
  );
  worker.unref();
  worker.on('error', (error) => {
    process.stderr.write(
      `mpthreads: the queue hub failed; queues stop delivering (a bug in mpthreads):\n${error.stack}\n`,
    );
  });
  port1.unref();
  return port1;
}

/** @internal Called by a Process's worker at boot with the port its parent got for it. */
export function setHubPort(port: MessagePort): void {
  port.unref();
  (globalThis as Global)[kHubPort] = port;
}

function hubPort(): MessagePort {
  const g = globalThis as Global;
  return (g[kHubPort] ??= startHub());
}

/** Registers a new queue with the hub, with its first holder. */
export function createQueue(cells: Int32Array, joinable: boolean, holder: HolderWire): void {
  const message: CreateMessage = { op: Op.Create, cells, joinable, holder };
  hubPort().postMessage(message, [holder.port as MessagePort]);
}

/**
 * A port to the hub for a child thread about to start (its BootData's `hub`). From the main thread this starts
 * the hub if it is not running yet.
 */
export function childHubPort(): MessagePort {
  const { port1, port2 } = new MessageChannel();
  const message: AdoptMessage = { op: Op.Adopt, port: port1 };
  hubPort().postMessage(message, [port1]);
  return port2;
}
