// Starting the queue tests' worker bodies (test/fixtures/queue-tasks.ts) and checking they ended well.
import * as assert from 'uvu/assert';
import type { Process } from '../../lib/index.ts';
import { startTask } from './harness.ts';

const tasks = new URL('../fixtures/queue-tasks.ts', import.meta.url);

/** Starts `target` from the queue fixtures, tracked so the harness cleans it up. */
export function start(target: string, args: unknown[]): Process {
  return startTask(tasks, target, args);
}

/** Joins each process and asserts it returned normally. */
export async function joinedOk(...ps: Process[]): Promise<void> {
  for (const p of ps) {
    await p.join();
    assert.is(p.exitCode, 0, `${p.name} exit code (error: ${p.error?.stack})`);
  }
}
