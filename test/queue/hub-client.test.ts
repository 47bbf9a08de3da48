// The main thread starts the queue hub lazily (lib/queue/hub-client.ts): the program in fixtures/lazy-hub.ts
// runs in a process of its own, since this one's hub is already running.
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { suite } from '../_support/harness.ts';
import { run } from '../_support/run-program.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const lazy = suite('hub client: the hub starts with the first queue');

lazy(
  'a Process without queues starts no hub; the first queues of a child or a grandchild start it, losing nothing',
  async () => {
    const fixture = fileURLToPath(new URL('../fixtures/lazy-hub.ts', import.meta.url));
    const { code, signal, stdout, stderr } = await run(process.execPath, ['--import', 'tsx', fixture], {
      cwd: root,
      ms: 40_000,
    });
    assert.is(signal, null, stderr);
    assert.is(code, 0, stderr);
    const out = JSON.parse(stdout);
    assert.is(out.greeting, 'hello');
    assert.is(out.afterPlainProcess, false, 'a Process that made no queue started the hub');
    assert.equal(out.child, [
      [0, 1, 2],
      [10, 11, 12],
      [20, 21, 22],
      [30, 31, 32],
    ]);
    assert.equal(out.grandchild, [
      [0, 1, 2],
      [10, 11, 12],
      [20, 21, 22],
    ]);
    assert.is(out.after, true);
  },
  50_000,
);

lazy(
  'in a fresh program, a get with a timeout made right after a put finds the item while the hub starts (async and sync)',
  async () => {
    const fixture = fileURLToPath(new URL('../fixtures/first-get.ts', import.meta.url));
    for (const how of ['async', 'sync']) {
      const { code, signal, stdout, stderr } = await run(process.execPath, ['--import', 'tsx', fixture, how], {
        cwd: root,
        ms: 30_000,
      });
      assert.is(signal, null, stderr);
      assert.is(code, 0, stderr);
      // The timeout counts from when the hub serves: it took 30-40 ms to start here from JavaScript, 150-230
      // under tsx, so a 50 ms get failed with Empty while qsize() said 1.
      assert.equal(JSON.parse(stdout), { got: true }, `${how}: ${stdout}`);
    }
  },
  40_000,
);

lazy.run();
