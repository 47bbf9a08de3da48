// Resources (issue 5, part 5), at CI sizes: a soak and churn with the heap fitted to a line (in a child process
// with --expose-gc), no leftover handles, programs that end by themselves, a main thread that throws, timers
// that ping-pong traffic does not starve.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as assert from 'uvu/assert';
import { JoinableQueue, Pipe, Queue, SimpleQueue } from '../../lib/index.ts';
import { waitAtLeast } from '../fixtures/reliability-tasks.ts';
import { Agent, stopAll, tasks } from './agents.ts';
import { root, run, runScenario } from './child.ts';
import { figure } from './figures.ts';
import { TicketClock } from './history.ts';
import { programs } from './programs.ts';
import { startPingPongs } from './scenarios-faults.ts';
import { resources, settleResources, type ChurnResult, type SoakResult } from './scenarios-resources.ts';
import { startTask, suite } from '../_support/harness.ts';

/** A program that has nothing left to do must be gone within this long (the issue: "a few seconds"). */
const EXIT_BOUND_MS = 5000;
/** Heap growth bounds, after a full GC, fitted over the run: a leaked item/handle per operation exceeds them. */
const SOAK_BYTES_PER_ITEM = 64;
const CHURN_BYTES_PER_OP = 512;
const CHURN_BYTES_PER_PROCESS = 64 * 1024;

const t = suite('reliability: resources', 180_000);

t(
  'soak: 1,000,000 x 1 KiB through a queue: all in order, heap flat, no handle left, the program ends by itself',
  async () => {
    const { result: r, exitMs } = await runScenario<SoakResult>('soak', { n: 1_000_000, pad: 1024 }, 170_000);
    figure(
      'soak 1000000 x 1 KiB',
      r.perSecond,
      'items/s',
      `heap ${r.heapFirstMiB.toFixed(1)} -> ${r.heapLastMiB.toFixed(1)} MiB (slope ${r.heapSlope.toFixed(1)} B/item), RSS ${r.rssFirstMiB.toFixed(0)} -> ${r.rssLastMiB.toFixed(0)} MiB, exit ${exitMs.toFixed(0)} ms after`,
    );
    assert.ok(r.gcExposed);
    assert.is(r.received, 1_000_000);
    assert.is(r.outOfOrder, 0);
    assert.is(r.corrupt, 0);
    assert.ok(r.heapSlope < SOAK_BYTES_PER_ITEM, `heap grows ${r.heapSlope.toFixed(1)} bytes per item`);
    assert.equal(r.resourcesAfter, r.resourcesBefore);
    assert.ok(exitMs < EXIT_BOUND_MS, `the child took ${exitMs.toFixed(0)} ms to exit`);
  },
);

t(
  'churn: 1,000 pipes, 1,000 queues, 20 processes created and closed: heap flat, handles back to baseline',
  async () => {
    const { result: r, exitMs } = await runScenario<ChurnResult>(
      'churn',
      { pipes: 1000, queues: 1000, processes: 20 },
      170_000,
    );
    for (const [what, phase] of [
      ['pipes', r.pipes],
      ['queues', r.queues],
      ['processes', r.processes],
    ] as const) {
      figure(
        `churn ${phase.n} ${what}`,
        phase.ms / phase.n,
        'ms each',
        `heap slope ${phase.heapSlope.toFixed(0)} B/op, heap ${phase.heapFirstMiB.toFixed(1)} -> ${phase.heapLastMiB.toFixed(1)} MiB, RSS ${phase.rssFirstMiB.toFixed(0)} -> ${phase.rssLastMiB.toFixed(0)} MiB`,
      );
    }
    assert.ok(r.gcExposed);
    assert.equal(r.errors, []);
    assert.equal(r.processes.exitCodes, { 0: 20 });
    assert.ok(
      r.pipes.heapSlope < CHURN_BYTES_PER_OP,
      `pipes: heap grows ${r.pipes.heapSlope.toFixed(0)} bytes per pipe`,
    );
    assert.ok(
      r.queues.heapSlope < CHURN_BYTES_PER_OP,
      `queues: heap grows ${r.queues.heapSlope.toFixed(0)} bytes per queue`,
    );
    assert.ok(
      r.processes.heapSlope < CHURN_BYTES_PER_PROCESS,
      `processes: heap grows ${r.processes.heapSlope.toFixed(0)} bytes per process`,
    );
    assert.equal(r.resourcesAfter, r.resourcesBefore);
    assert.ok(exitMs < EXIT_BOUND_MS, `the child took ${exitMs.toFixed(0)} ms to exit`);
  },
);

t('in this process: pipes, queues and a process, used and closed, leave the active handles as they were', async () => {
  // Warm up (the queue hub, a worker), then take the baseline.
  const warm = new Queue<number>();
  await warm.put(1);
  await warm.get();
  warm.close();
  // The child process the test before ran may still be closing: its handle must not become the baseline.
  const { ProcessWrap: _closing, ...ours } = resources();
  const before = await settleResources(ours);
  for (let i = 0; i < 50; i++) {
    const [a, b] = Pipe<number>();
    a.send(i);
    await b.recv();
    const recvTimedOut = await b.recv({ timeout: 1 }).catch((e: Error) => e.name);
    assert.is(recvTimedOut, 'TimeoutError');
    a.close();
    b.close();
    const q =
      i % 3 === 0
        ? new Queue<number>({ maxsize: 1 })
        : i % 3 === 1
          ? new JoinableQueue<number>()
          : new SimpleQueue<number>();
    await q.put(i);
    if (q instanceof Queue && q.maxsize === 1)
      assert.is(await q.put(0, { timeout: 1 }).catch((e: Error) => e.name), 'Full');
    await q.get();
    assert.is(await q.get({ timeout: 1 }).catch((e: Error) => e.name), 'Empty');
    q.close();
  }
  const q = new Queue<number>();
  const [a, b] = Pipe<number>();
  const p = startTask(tasks, 'touch', [b, q]);
  a.send(1);
  assert.is(await q.get(), 2);
  assert.is(await a.recv(), 3);
  await p.join();
  a.close();
  q.close();
  const after = await settleResources(before, 5000);
  assert.equal(after, before);
});

t('programs end by themselves within a few seconds, or fail with exit code 1 when the main thread throws', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mpthreads-reliability-'));
  const lib = JSON.stringify(pathToFileURL(join(root, 'lib', 'index.ts')).href);
  const failures: string[] = [];
  try {
    const runOne = async (prog: (typeof programs)[number]) => {
      const file = join(dir, `${prog.name}.mts`);
      await writeFile(file, prog.source.replaceAll('LIB', lib));
      const r = await run('npx', ['tsx', file], 90_000);
      const line = r.stdout.split('\n').find((l) => l.startsWith(prog.last));
      const exitMs = line === undefined ? NaN : r.exitedAt - r.lineTimes.get(line)!;
      figure(`program "${prog.name}" ends`, exitMs, 'ms after its last line', `exit code ${r.code}`);
      const output = `${r.stdout}\n${r.stderr}`;
      const problems: string[] = [];
      if (r.timedOut) problems.push('did not end within 90 s (killed)');
      if (r.code !== prog.expectCode) problems.push(`exit code ${r.code}, expected ${prog.expectCode}`);
      if (line === undefined) problems.push(`never printed "${prog.last}"`);
      else if (!(exitMs < EXIT_BOUND_MS)) problems.push(`took ${exitMs.toFixed(0)} ms to end after "${prog.last}"`);
      if (prog.expectOutput !== undefined && !prog.expectOutput.test(output))
        problems.push(`output does not match ${prog.expectOutput}`);
      if (problems.length > 0)
        failures.push(
          `${prog.name}: ${problems.join('; ')}\n--- stdout ---\n${r.stdout.slice(-1500)}\n--- stderr ---\n${r.stderr.slice(-1500)}`,
        );
    };
    // Two at a time: the machine has two cores.
    for (let i = 0; i < programs.length; i += 2) await Promise.all(programs.slice(i, i + 2).map(runOne));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(failures, []);
});

// ---------------------------------------------------------------------------------------------------------
const clock = new TicketClock();
let agents: Agent[] = [];
const starve = suite('reliability: starvation', 60_000);
starve.before(async () => {
  agents = await Agent.start(5, clock);
});
starve.after(async () => {
  await stopAll(agents);
});

starve(
  'endless ping-pong between workers (pipe and queues) and with the main thread does not starve a main-thread timer',
  async () => {
    const pongs = startPingPongs(agents);
    const counters = pongs.counters.map((b) => new Int32Array(b));
    // Wait until both pairs are exchanging.
    for (const c of counters) assert.ok(await waitAtLeast(c, 0, 100, 20_000), 'a ping-pong pair did not start');
    // The main thread ping-pongs with a fifth agent at the same time.
    const [mine, theirs] = Pipe<unknown>();
    const echoing = agents[4]!.call({ op: 'echo', conn: theirs });
    let mainExchanges = 0;
    let stopMain = false;
    const mainPong = (async () => {
      while (!stopMain) {
        mine.send(mainExchanges);
        await mine.recv();
        mainExchanges++;
      }
      mine.close();
    })();
    const before = counters.map((c) => Atomics.load(c, 0));
    const lateness: number[] = [];
    for (let i = 0; i < 20; i++) {
      const start = performance.now();
      await new Promise<void>((resolve) => setTimeout(resolve, 10));
      lateness.push(performance.now() - start - 10);
    }
    stopMain = true;
    await mainPong;
    await echoing;
    const during = counters.map((c, i) => Atomics.load(c, 0) - before[i]!);
    const exchanges = await pongs.stop();
    lateness.sort((x, y) => x - y);
    figure(
      'setTimeout(10) lateness under ping-pong',
      lateness[10]!,
      'ms p50',
      `max ${lateness[19]!.toFixed(1)} ms; exchanges during: pipe ${during[0]}, queues ${during[1]}, main ${mainExchanges}`,
    );
    assert.ok(
      during.every((n) => n > 0) && mainExchanges > 0,
      `traffic during the measurement: ${during.join(', ')}, main ${mainExchanges}`,
    );
    assert.ok(lateness[19]! < 1000, `a 10 ms timer fired up to ${lateness[19]!.toFixed(0)} ms late`);
    assert.ok(exchanges.every((n) => n > 0));
  },
);

t.run();
starve.run();
