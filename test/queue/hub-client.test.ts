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

lazy.run();
