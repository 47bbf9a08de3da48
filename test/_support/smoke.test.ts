import * as assert from 'uvu/assert';
import { Pipe, Process } from '../../lib/index.ts';
import { suite, track } from './harness.ts';

const t = suite('harness');
t('a process round trip works through the harness', async () => {
  const [a, b] = Pipe<number>();
  const p = track(
    new Process({ target: 'echoOnce', module: new URL('../fixtures/basic.ts', import.meta.url), args: [b] }),
  );
  p.start();
  a.send(41);
  assert.is(await a.recv(), 42);
  await p.join();
  assert.is(p.exitCode, 0);
});
t.run();
