// Driving team members through one case: setup, timed repetitions, teardown. The same code times the raw
// and the mpthreads rows of a topology, so their numbers mean the same thing.
//
// Throughput timing: the main thread reads performance.now() just before it posts 'go' to the producers and
// again when the last consumer's 'done' has arrived, so a repetition covers producing, moving and consuming
// every item, plus one control hop each way (~20-100 µs, under 0.1% of any repetition here).
// Round-trip timing: the pinger times each round trip and its whole loop itself.
import type { TransferListItem } from 'node:worker_threads';
import type { RoundTripStats } from '../tasks/control.mjs';
import type { Endpoint } from './team.ts';

export interface Part {
  ep: Endpoint;
  n: number;
  start: number;
}

export interface Expect {
  count: number;
  checksum?: number;
  what: string;
}

/** Installs a role in each member (the roles' channels travel inside); resolves when all are ready. */
export async function setup(
  parts: { ep: Endpoint; role: Record<string, unknown>; transfer?: TransferListItem[] }[],
): Promise<void> {
  for (const p of parts) p.ep.send({ op: 'setup', role: p.role }, p.transfer);
  for (const p of parts) await expectOp(p.ep, 'ready');
}

export async function teardown(eps: readonly Endpoint[]): Promise<void> {
  for (const ep of eps) ep.send({ op: 'teardown' });
  for (const ep of eps) await expectOp(ep, 'ready');
}

async function expectOp(ep: Endpoint, op: 'ready' | 'done', timeoutMs?: number) {
  const reply = await ep.recv(timeoutMs);
  if (reply.op !== op) throw new Error(`${ep.label}: expected '${op}', got ${JSON.stringify(reply)}`);
  return reply as Extract<typeof reply, { op: typeof op }>;
}

async function done(ep: Endpoint, timeoutMs: number) {
  const reply = await ep.recv(timeoutMs);
  if (reply.op !== 'done') throw new Error(`${ep.label}: expected 'done', got ${JSON.stringify(reply)}`);
  return reply;
}

/**
 * One throughput repetition; resolves with its duration in seconds. Fails if the consumers did not receive
 * exactly `expect.count` items with the expected checksum.
 */
export async function throughputRep(
  producers: readonly Part[],
  consumers: readonly Part[],
  expect: Expect,
  timeoutMs: number,
): Promise<number> {
  const all = [...producers, ...consumers];
  for (const p of all) p.ep.send({ op: 'run', n: p.n, start: p.start });
  for (const p of all) await expectOp(p.ep, 'ready', timeoutMs);
  const consumed = Promise.all(consumers.map((c) => done(c.ep, timeoutMs)));
  const t0 = performance.now();
  for (const p of producers) p.ep.send({ op: 'go' });
  const replies = await consumed;
  const t1 = performance.now();
  for (const p of producers) await done(p.ep, timeoutMs);
  const count = replies.reduce((s, r) => s + r.count, 0);
  const checksum = replies.reduce((s, r) => s + r.checksum, 0);
  if (count !== expect.count)
    throw new Error(`${expect.what}: consumers received ${count} items, expected ${expect.count}`);
  if (expect.checksum !== undefined && checksum !== expect.checksum) {
    throw new Error(`${expect.what}: checksum ${checksum}, expected ${expect.checksum}`);
  }
  return (t1 - t0) / 1000;
}

/** One round-trip repetition of n round trips; the pinger's own timing and latency percentiles. */
export async function roundTripRep(
  pinger: Endpoint,
  ponger: Endpoint,
  n: number,
  what: string,
  timeoutMs: number,
): Promise<RoundTripStats> {
  ponger.send({ op: 'run', n, start: 0 });
  pinger.send({ op: 'run', n, start: 0 });
  await expectOp(ponger, 'ready', timeoutMs);
  await expectOp(pinger, 'ready', timeoutMs);
  pinger.send({ op: 'go' });
  const ping = await done(pinger, timeoutMs);
  const pong = await done(ponger, timeoutMs);
  if (ping.stats === undefined) throw new Error(`${what}: the pinger reported no timing`);
  if (ping.count !== n || pong.count !== n)
    throw new Error(`${what}: ${ping.count} pings and ${pong.count} pongs, expected ${n}`);
  return ping.stats;
}
