// The Node 20 race alone, without mpthreads (run by probe.ts --raw): a thread with Atomics.waitAsync pending
// on shared cells is terminated; a "hub" thread that holds a port to it wakes the cells when the port closes,
// at once or WAKE_DELAY ms later. A wake that reaches the dying thread's wait while Node shuts its task runner
// down calls uv_async_send(NULL) (nodejs/node#56236): SIGSEGV.
//
//   node node-race.mjs [threads=400]     env: WAKE_DELAY (ms, default 0), PARALLEL (default 1)
import { MessageChannel, Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const role = isMainThread ? 'main' : workerData.role;
if (role === 'waiter') {
  const cells = new Int32Array(workerData.sab);
  for (let i = 0; i < 8; i++) Atomics.waitAsync(cells, i, 0);
  workerData.port.on('message', () => {});
  parentPort?.postMessage('waiting');
} else if (role === 'hub') {
  const cells = new Int32Array(workerData.sab);
  const delay = Number(process.env.WAKE_DELAY ?? 0);
  parentPort?.on('message', (port) => {
    port.on('message', () => {});
    port.on('close', () => {
      const wake = () => {
        for (let i = 0; i < 8; i++) Atomics.notify(cells, i);
      };
      if (delay > 0) setTimeout(wake, delay);
      else wake();
    });
  });
} else {
  const sab = new SharedArrayBuffer(64);
  const hub = new Worker(new URL(import.meta.url), { workerData: { role: 'hub', sab } });
  const threads = Number(process.argv[2] ?? 400);
  const parallel = Number(process.env.PARALLEL ?? 1);
  const one = async () => {
    const { port1, port2 } = new MessageChannel();
    hub.postMessage(port1, [port1]);
    const worker = new Worker(new URL(import.meta.url), {
      workerData: { role: 'waiter', sab, port: port2 },
      transferList: [port2],
    });
    await new Promise((resolve) => worker.once('message', resolve));
    await worker.terminate();
  };
  for (let i = 0; i < threads; i += parallel) await Promise.all(Array.from({ length: parallel }, one));
  await hub.terminate();
  console.log('ok');
}
