// A probe, not a test (it is slow and its result is a rate): does terminating a thread while its get waits
// crash the process? On Node 20 it could (hub.ts, kDepartureWakeMs): the queue hub's wake-up after the thread
// left reached the thread's pending Atomics.waitAsync while Node tore the thread down, and Node's platform
// called uv_async_send(NULL). Seen once in CI; this probe preloads slow-unlock.c, which widens Node's race
// window, and runs terminate-watchers.ts (or, with --raw, node-race.mjs: the race without mpthreads) `runs`
// times.
//
//   npx tsx test/stress/terminate-race/probe.ts [--raw] [runs=4] [threads per run=600] [parallel=1]
//
// Needs a C compiler (cc) and Linux. Prints each run's exit code (139: SIGSEGV) and the count of crashes.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const raw = process.argv.includes('--raw');
const [runs = 4, threads = 600, parallel = 1] = process.argv
  .slice(2)
  .filter((a) => a !== '--raw')
  .map(Number);
const dir = mkdtempSync(join(tmpdir(), 'mpthreads-race-'));
try {
  const shim = join(dir, 'slow-unlock.so');
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', shim, join(here, 'slow-unlock.c'), '-ldl']);
  let crashes = 0;
  for (let run = 1; run <= runs; run++) {
    const started = performance.now();
    const args = raw
      ? [join(here, 'node-race.mjs'), String(threads)]
      : ['--import', 'tsx', join(here, 'terminate-watchers.ts'), String(threads), String(parallel)];
    const env = { ...process.env, LD_PRELOAD: shim, SLOW_PERMILLE: '20', PARALLEL: String(parallel) };
    const child = spawnSync(process.execPath, args, { env, encoding: 'utf8', timeout: 900_000 });
    const crashed = child.signal === 'SIGSEGV' || child.status === 139;
    if (crashed) crashes++;
    const seconds = ((performance.now() - started) / 1000).toFixed(0);
    console.log(`run ${run}: ${crashed ? 'crashed (SIGSEGV)' : `exit ${child.status ?? child.signal}`}, ${seconds} s`);
  }
  console.log(`${crashes} of ${runs} runs crashed`);
  process.exitCode = crashes > 0 ? 1 : 0;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
