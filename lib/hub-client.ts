// Each thread that creates queues starts one hub worker, lazily, the first time it creates a queue. The hub
// is unref'd: it never keeps the program alive by itself (holders that wait keep their own ports ref'd).
// A queue lives as long as the thread that created it: when that thread exits, its hub goes with it.
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { currentProcess } from './context.ts';
import { kHolderFields, Op, type CreateMessage } from './queue-protocol.ts';
import { PROTOCOL_TAG, type BootData } from './protocol.ts';
import { bootstrapUrl, hubRuntime } from './runtime.ts';

let hub: Worker | undefined;

function startHub(): Worker {
  const self = currentProcess();
  const boot: BootData = {
    runtime: hubRuntime.url,
    entry: hubRuntime.entry,
    tsx: hubRuntime.url.endsWith('.ts'),
    module: hubRuntime.url,
    target: hubRuntime.entry,
    args: [],
    context: {
      self: { name: `${self.name}/queue-hub`, pid: -1, daemon: true },
      parent: self,
      identity: [],
    },
  };
  const worker = new Worker(bootstrapUrl, { workerData: { [PROTOCOL_TAG]: boot }, name: 'mpthreads queue hub' });
  worker.unref();
  worker.on('error', (error) => {
    process.stderr.write(`mpthreads: the queue hub failed; queues of this thread stop delivering:\n${error.stack}\n`);
  });
  worker.on('exit', () => { if (hub === worker) hub = undefined; });
  return worker;
}

/** Registers a new queue with this thread's hub; returns the first holder's port and counters. */
export function createQueueInHub(shared: SharedArrayBuffer, joinable: boolean): { port: MessagePort; counters: SharedArrayBuffer } {
  hub ??= startHub();
  const { port1, port2 } = new MessageChannel();
  const counters = new SharedArrayBuffer(kHolderFields * Int32Array.BYTES_PER_ELEMENT);
  const message: CreateMessage = { op: Op.Create, shared, joinable, port: port2, counters };
  hub.postMessage(message, [port2]);
  return { port: port1, counters };
}
