// spsc: one worker sends N items, another worker receives them (worker to worker, one way).
//   raw          one postMessage per item on a bare MessagePort
//   raw-batched  arrays of 1,000 items per postMessage (small payloads only)
//   pipe         Pipe(false): producer conn.send(x) loop, consumer await conn.recv() loop
//   queue        Queue: producer `await q.put(x)` loop, consumer `await q.get()` loop
//   simplequeue  the same loops on a SimpleQueue (small payloads only)
import { MessageChannel } from 'node:worker_threads';
import { Pipe, Queue, SimpleQueue } from '../../lib/index.ts';
import { PAYLOADS, expectedChecksum, type Payload } from '../tasks/payloads.mjs';
import { setup, teardown, throughputRep } from './drive.ts';
import { team, type Endpoint } from './team.ts';
import { repeat, sizeOf, throughput, type BenchCase, type CaseContext, type Measurement } from './types.ts';

export const RAW_BATCH = 1000;
const SMALL: readonly Payload[] = ['int', 'object', 'str1k'];

export function spscCases(): BenchCase[] {
  const cases: BenchCase[] = [];
  for (const payload of PAYLOADS) {
    const add = (impl: string, run: (ctx: CaseContext) => Promise<Measurement>) =>
      cases.push({ name: `${impl}/spsc/${payload}`, impl, topology: 'spsc', payload, run });
    add('raw', (ctx) => rawSpsc(ctx, payload, 0));
    if (SMALL.includes(payload)) add('raw-batched', (ctx) => rawSpsc(ctx, payload, RAW_BATCH));
    add('pipe', (ctx) => pipeSpsc(ctx, payload));
    add('queue', (ctx) => queueSpsc(ctx, payload, () => new Queue()));
    if (SMALL.includes(payload)) add('simplequeue', (ctx) => queueSpsc(ctx, payload, () => new SimpleQueue()));
  }
  return cases;
}

async function rawSpsc(ctx: CaseContext, payload: Payload, batch: number): Promise<Measurement> {
  const size = sizeOf('spsc', payload, ctx.quick);
  const [producer, consumer] = (await team('raw')).members as [Endpoint, Endpoint];
  const { port1, port2 } = new MessageChannel();
  await setup([
    { ep: producer, role: { kind: 'producer', ports: [port1], payload, batch }, transfer: [port1] },
    { ep: consumer, role: { kind: 'consumer', ports: [port2], payload, batch }, transfer: [port2] },
  ]);
  const seconds = await repeat(ctx, size, (n, timeoutMs) =>
    throughputRep(
      [{ ep: producer, n, start: 0 }],
      [{ ep: consumer, n, start: 0 }],
      { count: n, checksum: expectedChecksum(payload, 0, n), what: `raw/spsc/${payload}` },
      timeoutMs,
    ),
  );
  await teardown([producer, consumer]);
  return throughput(size, seconds);
}

async function pipeSpsc(ctx: CaseContext, payload: Payload): Promise<Measurement> {
  const size = sizeOf('spsc', payload, ctx.quick);
  const [producer, consumer] = (await team('mpthreads')).members as [Endpoint, Endpoint];
  const [reader, writer] = Pipe(false);
  await setup([
    { ep: producer, role: { kind: 'pipe-producer', conn: writer, payload } },
    { ep: consumer, role: { kind: 'pipe-consumer', conn: reader, payload } },
  ]);
  const seconds = await repeat(ctx, size, (n, timeoutMs) =>
    throughputRep(
      [{ ep: producer, n, start: 0 }],
      [{ ep: consumer, n, start: 0 }],
      { count: n, checksum: expectedChecksum(payload, 0, n), what: `pipe/spsc/${payload}` },
      timeoutMs,
    ),
  );
  await teardown([producer, consumer]);
  return throughput(size, seconds);
}

async function queueSpsc(
  ctx: CaseContext,
  payload: Payload,
  create: () => Queue<unknown> | SimpleQueue<unknown>,
): Promise<Measurement> {
  const size = sizeOf('spsc', payload, ctx.quick);
  const [producer, consumer] = (await team('mpthreads')).members as [Endpoint, Endpoint];
  const q = create();
  const impl = q instanceof SimpleQueue ? 'simplequeue' : 'queue';
  try {
    await setup([
      { ep: producer, role: { kind: 'queue-producer', queue: q, payload } },
      { ep: consumer, role: { kind: 'queue-consumer', queue: q, payload } },
    ]);
    const seconds = await repeat(ctx, size, (n, timeoutMs) =>
      throughputRep(
        [{ ep: producer, n, start: 0 }],
        [{ ep: consumer, n, start: 0 }],
        { count: n, checksum: expectedChecksum(payload, 0, n), what: `${impl}/spsc/${payload}` },
        timeoutMs,
      ),
    );
    await teardown([producer, consumer]);
    return throughput(size, seconds);
  } finally {
    q.close();
  }
}
