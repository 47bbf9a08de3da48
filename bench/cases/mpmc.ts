// mpmc: 2 producer workers × 2 consumer workers, N items in all (N/2 per producer).
//   raw, raw-batched  no shared queue exists on bare ports, so each producer has a port to each consumer and
//                     deals its items round-robin (a static split): the cost floor of moving the same items
//                     between the same four threads
//   queue, simplequeue  one queue; each producer puts its N/2 items; the consumers get until together they have
//                     taken N (a count in shared memory), then the one that took the N-th puts a null that stops
//                     the other. (python_mp.py stops on one sentinel per producer instead; with mpthreads that
//                     rule can strand items: a consumer may hold leased items behind the sentinel it stops at.)
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Queue, SimpleQueue } from '../../lib/index.ts';
import { expectedChecksum, type Payload } from '../tasks/payloads.mjs';
import { setup, teardown, throughputRep, type Part } from './drive.ts';
import { RAW_BATCH } from './spsc.ts';
import { team, type Endpoint } from './team.ts';
import { repeat, sizeOf, throughput, type BenchCase, type CaseContext, type Measurement } from './types.ts';

const MPMC_PAYLOADS: readonly Payload[] = ['int', 'object'];

export function mpmcCases(): BenchCase[] {
  const cases: BenchCase[] = [];
  for (const payload of MPMC_PAYLOADS) {
    const add = (impl: string, run: (ctx: CaseContext) => Promise<Measurement>) =>
      cases.push({ name: `${impl}/mpmc/${payload}`, impl, topology: 'mpmc', payload, run });
    add('raw', (ctx) => rawMpmc(ctx, payload, 0));
    add('raw-batched', (ctx) => rawMpmc(ctx, payload, RAW_BATCH));
    add('queue', (ctx) => queueMpmc(ctx, payload, () => new Queue()));
    add('simplequeue', (ctx) => queueMpmc(ctx, payload, () => new SimpleQueue()));
  }
  return cases;
}

/** Producers get items [0, n/2) and [n/2, n); each consumer is told the total. */
function parts(eps: readonly Endpoint[], n: number): { producers: Part[]; consumers: Part[] } {
  const half = Math.floor(n / 2);
  return {
    producers: [
      { ep: eps[0]!, n: half, start: 0 },
      { ep: eps[1]!, n: n - half, start: half },
    ],
    consumers: [
      { ep: eps[2]!, n, start: 0 },
      { ep: eps[3]!, n, start: 0 },
    ],
  };
}

async function rawMpmc(ctx: CaseContext, payload: Payload, batch: number): Promise<Measurement> {
  const size = sizeOf('mpmc', payload, ctx.quick);
  const eps = (await team('raw')).members;
  // link[p][c]: producer p -> consumer c
  const link = [0, 1].map(() => [0, 1].map(() => new MessageChannel()));
  const out = (p: number): MessagePort[] => [link[p]![0]!.port1, link[p]![1]!.port1];
  const into = (c: number): MessagePort[] => [link[0]![c]!.port2, link[1]![c]!.port2];
  await setup([
    { ep: eps[0]!, role: { kind: 'producer', ports: out(0), payload, batch }, transfer: out(0) },
    { ep: eps[1]!, role: { kind: 'producer', ports: out(1), payload, batch }, transfer: out(1) },
    { ep: eps[2]!, role: { kind: 'consumer', ports: into(0), payload, batch }, transfer: into(0) },
    { ep: eps[3]!, role: { kind: 'consumer', ports: into(1), payload, batch }, transfer: into(1) },
  ]);
  const impl = batch > 0 ? 'raw-batched' : 'raw';
  const seconds = await repeat(ctx, size, (n, timeoutMs) => {
    const { producers, consumers } = parts(eps, n);
    return throughputRep(
      producers,
      consumers,
      { count: n, checksum: expectedChecksum(payload, 0, n), what: `${impl}/mpmc/${payload}` },
      timeoutMs,
    );
  });
  await teardown(eps);
  return throughput(size, seconds);
}

async function queueMpmc(
  ctx: CaseContext,
  payload: Payload,
  create: () => Queue<unknown> | SimpleQueue<unknown>,
): Promise<Measurement> {
  const size = sizeOf('mpmc', payload, ctx.quick);
  const eps = (await team('mpthreads')).members;
  const q = create();
  const impl = q instanceof SimpleQueue ? 'simplequeue' : 'queue';
  const counter = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
  try {
    await setup([
      { ep: eps[0]!, role: { kind: 'queue-producer', queue: q, payload } },
      { ep: eps[1]!, role: { kind: 'queue-producer', queue: q, payload } },
      { ep: eps[2]!, role: { kind: 'queue-consumer', queue: q, payload, counter, consumers: 2 } },
      { ep: eps[3]!, role: { kind: 'queue-consumer', queue: q, payload, counter, consumers: 2 } },
    ]);
    const seconds = await repeat(ctx, size, (n, timeoutMs) => {
      Atomics.store(new Int32Array(counter), 0, 0);
      const { producers, consumers } = parts(eps, n);
      return throughputRep(
        producers,
        consumers,
        { count: n, checksum: expectedChecksum(payload, 0, n), what: `${impl}/mpmc/${payload}` },
        timeoutMs,
      );
    });
    await teardown(eps);
    return throughput(size, seconds);
  } finally {
    q.close();
  }
}
