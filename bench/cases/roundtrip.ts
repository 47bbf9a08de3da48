// roundtrip: a pinger worker sends an int and waits for a ponger worker to echo it, N times; every round
// trip is timed with performance.now() (p50/p99), items/s = round trips per second of the whole loop.
//   raw          one MessagePort, 'message' callbacks on both sides
//   pipe         one duplex Pipe: send then await recv
//   queue, simplequeue  two queues (out, back): await put then await get
import { MessageChannel } from 'node:worker_threads';
import { Pipe, Queue, SimpleQueue } from '../../lib/index.ts';
import type { RoundTripStats } from '../tasks/control.mjs';
import { roundTripRep, setup, teardown } from './drive.ts';
import { team, type Endpoint } from './team.ts';
import { median, repeat, sizeOf, type BenchCase, type CaseContext, type Measurement } from './types.ts';

export function roundtripCases(): BenchCase[] {
  const add = (impl: string, run: (ctx: CaseContext) => Promise<Measurement>): BenchCase => ({
    name: `${impl}/roundtrip/int`,
    impl,
    topology: 'roundtrip',
    payload: 'int',
    run,
  });
  return [
    add('raw', rawRoundtrip),
    add('pipe', pipeRoundtrip),
    add('queue', (ctx) => queueRoundtrip(ctx, () => new Queue<number>())),
    add('simplequeue', (ctx) => queueRoundtrip(ctx, () => new SimpleQueue<number>())),
  ];
}

function measure(ctx: CaseContext, impl: string, pinger: Endpoint, ponger: Endpoint): Promise<Measurement> {
  const size = sizeOf('roundtrip', 'int', ctx.quick);
  return repeat(ctx, size, (n, timeoutMs) => roundTripRep(pinger, ponger, n, `${impl}/roundtrip/int`, timeoutMs)).then(
    (stats: RoundTripStats[]) => {
      const perRep = stats.map((s) => size.n / (s.elapsedMs / 1000));
      return {
        n: size.n,
        reps: size.reps,
        perRep,
        itemsPerS: median(perRep),
        p50us: median(stats.map((s) => s.p50us)),
        p99us: median(stats.map((s) => s.p99us)),
      };
    },
  );
}

async function rawRoundtrip(ctx: CaseContext): Promise<Measurement> {
  const [pinger, ponger] = (await team('raw')).members as [Endpoint, Endpoint];
  const { port1, port2 } = new MessageChannel();
  await setup([
    { ep: pinger, role: { kind: 'pinger', ports: [port1] }, transfer: [port1] },
    { ep: ponger, role: { kind: 'ponger', ports: [port2] }, transfer: [port2] },
  ]);
  const m = await measure(ctx, 'raw', pinger, ponger);
  await teardown([pinger, ponger]);
  return m;
}

async function pipeRoundtrip(ctx: CaseContext): Promise<Measurement> {
  const [pinger, ponger] = (await team('mpthreads')).members as [Endpoint, Endpoint];
  const [a, b] = Pipe<number>();
  await setup([
    { ep: pinger, role: { kind: 'pipe-pinger', conn: a } },
    { ep: ponger, role: { kind: 'pipe-ponger', conn: b } },
  ]);
  const m = await measure(ctx, 'pipe', pinger, ponger);
  await teardown([pinger, ponger]);
  return m;
}

async function queueRoundtrip(
  ctx: CaseContext,
  create: () => Queue<number> | SimpleQueue<number>,
): Promise<Measurement> {
  const [pinger, ponger] = (await team('mpthreads')).members as [Endpoint, Endpoint];
  const out = create();
  const back = create();
  const impl = out instanceof SimpleQueue ? 'simplequeue' : 'queue';
  try {
    await setup([
      { ep: pinger, role: { kind: 'queue-pinger', out, back } },
      { ep: ponger, role: { kind: 'queue-ponger', out, back } },
    ]);
    const m = await measure(ctx, impl, pinger, ponger);
    await teardown([pinger, ponger]);
    return m;
  } finally {
    out.close();
    back.close();
  }
}
