// Waits on shared memory (lib/shared-wait.ts) that only this thread could end: with no timeout or signal, on a
// primitive no other thread holds, they fail with ERR_DEADLOCK once the thread has nothing left to do, instead
// of keeping the program alive for good. Waits something else ends are untouched.
import * as assert from 'uvu/assert';
import { runTsProgram } from './_support/run-program.ts';
import { suite } from './_support/harness.ts';
import { beforeBlocking, runBlockingHooks } from '../lib/shared-wait.ts';

const t = suite('shared-wait: a wait only this thread could end', 120_000);

t(
  'async waits no other thread could end fail with ERR_DEADLOCK when the thread runs dry; the others end as before',
  async () => {
    // Each of the first five kept the program alive for good (the lifetime review's probe: killed after 25 s),
    // in the main thread and in a worker alike, where their ...Sync forms throw ERR_DEADLOCK at the call.
    const ran = await runTsProgram(
      (lib) => `
    import { Barrier, Condition, Event, Lock, Process, Semaphore, isMainThread } from ${lib};
    const code = (error: unknown) => (error as { code?: string }).code;
    async function lonelyWaits(): Promise<string[]> {
      const lock = new Lock();
      await lock.acquire();
      const condition = new Condition();
      await condition.acquire();
      const results = [
        await lock.acquire().catch(code),
        await new Semaphore(0).acquire().catch(code),
        await new Event().wait().catch(code),
        await condition.wait().catch(code),
        await new Barrier(2).wait().catch((e) => code(e) + ' ' + /on a Barrier/.test(e.message)),
      ];
      results.push(String(condition.release() === undefined)); // the wait took the lock back, as Python's does
      return results.map(String);
    }
    export async function inWorker(): Promise<void> {
      console.log('worker', (await lonelyWaits()).join(' '));
    }
    export async function setLater(event: Event): Promise<void> {
      await new Promise((resolve) => setTimeout(resolve, 50));
      event.set();
    }
    if (isMainThread) {
      console.log('main', (await lonelyWaits()).join(' '));
      const timed = new Event();
      setTimeout(() => timed.set(), 20);
      console.log('timer', await timed.wait());
      const atExit = new Event();
      process.once('beforeExit', () => atExit.set());
      console.log('beforeExit', await atExit.wait());
      const atExitLater = new Event();
      process.once('beforeExit', () => setImmediate(() => atExitLater.set()));
      console.log('beforeExit immediate', await atExitLater.wait());
      const shared = new Event();
      const waiting = shared.wait();
      const daemon = new Process({ target: setLater, module: import.meta.url, args: [shared], daemon: true });
      daemon.start(); // shared after the wait began, with a daemon that keeps nothing alive
      console.log('shared', await waiting);
      const p = new Process({ target: inWorker, module: import.meta.url });
      p.start();
      await p.join();
      console.log('exit', p.exitCode);
    }
  `,
    );
    assert.is(ran.code, 0, ran.stderr);
    const deadlocks = 'ERR_DEADLOCK ERR_DEADLOCK ERR_DEADLOCK ERR_DEADLOCK ERR_DEADLOCK true true';
    assert.equal(ran.stdout.trim().split('\n'), [
      `main ${deadlocks}`,
      'timer true',
      'beforeExit true',
      'beforeExit immediate true',
      'shared true',
      `worker ${deadlocks}`,
      'exit 0',
    ]);
  },
);

// Found by review of d2bd5e1: the hook that tells workers still waiting for a compiled module not to wait
// (compile.ts) ran before the hook that starts a queue's hub (hub-client.ts), so a hub started by a blocking
// call waited 500 ms for a delivery that could not come. Hooks registered as last now run after all others.
t('before a thread blocks, the hooks registered as last run after every other one, whenever registered', () => {
  const order: string[] = [];
  beforeBlocking(() => order.push('last'), true);
  beforeBlocking(() => order.push('first'));
  beforeBlocking(() => order.push('second'));
  runBlockingHooks();
  assert.equal(order, ['first', 'second', 'last']);
});

t.run();
