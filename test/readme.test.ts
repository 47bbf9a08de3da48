// The README's whole programs run as written: every ```ts block that starts by importing 'mpthreads' is written
// to a fresh module (importing lib/ instead) and run with tsx, as a reader would paste it, and must exit 0 by
// itself. A block that calls a method at the wrong moment (successful() before the result is ready) or uses a
// name it never defines fails here instead of on a newcomer's machine.
import { readFileSync } from 'node:fs';
import * as assert from 'uvu/assert';
import { suite } from './_support/harness.ts';
import { runTsProgram } from './_support/run-program.ts';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const programs = [...readme.matchAll(/```ts\n(.*?)```/gs)]
  .map((m) => m[1]!)
  .filter((block) => /^import .* from 'mpthreads';/.test(block));

const t = suite('README: its programs run', 120_000);

t('the README has its whole programs (the pipe, Pool, queues, registerClass, Lock, shared memory)', () => {
  assert.ok(programs.length >= 6, `found ${programs.length}`);
});

for (const block of programs) {
  const title = block.split('\n').find((line) => line.startsWith('import '))!;
  t(`runs and exits 0: ${title}`, async () => {
    const ran = await runTsProgram((lib) => block.replaceAll("from 'mpthreads'", `from ${lib}`), 90_000);
    assert.is(ran.signal, null, ran.stderr);
    assert.is(ran.code, 0, `${ran.stderr}\n--- the block ---\n${block}`);
  });
}

t.run();
