// Pool scenarios for the stress run (test/stress/index.ts); test/pool/pool.test.ts has the CI-sized version.
import { Pool, WorkerLostError } from '../../lib/index.ts';
import { maybeExit } from '../fixtures/pool-tasks.ts';

export interface PoolKillsResult {
  tasks: number;
  kills: number;
  ok: number;
  lost: number;
  /** Calls that settled more than once, or with a wrong value, or with an error other than WorkerLostError. */
  wrong: string[];
  ms: number;
}

/**
 * `tasks` applies on a 2-worker pool, `kills` of them (chosen by `seed`) calling process.exit() in the worker:
 * each call must settle exactly once, a killed task with WorkerLostError, every other with its value.
 */
export async function poolKills(tasks: number, kills: number, seed: number): Promise<PoolKillsResult> {
  let state = seed;
  const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const killed = new Set<number>();
  while (killed.size < kills) killed.add(Math.floor(random() * tasks));
  const pool = new Pool({ module: new URL('../fixtures/pool-tasks.ts', import.meta.url), processes: 2 });
  const settled = new Uint8Array(tasks);
  const result: PoolKillsResult = { tasks, kills, ok: 0, lost: 0, wrong: [], ms: 0 };
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: tasks }, (_, i) =>
      pool.apply(maybeExit, [i, killed.has(i)]).then(
        (value) => {
          if (settled[i]++ > 0 || value !== i || killed.has(i)) result.wrong.push(`task ${i}: ${String(value)}`);
          else result.ok++;
        },
        (error: unknown) => {
          if (settled[i]++ > 0 || !(error instanceof WorkerLostError) || !killed.has(i))
            result.wrong.push(`task ${i}: ${String(error)}`);
          else result.lost++;
        },
      ),
    ),
  );
  result.ms = performance.now() - t0;
  pool.terminate();
  await pool.join();
  return result;
}
