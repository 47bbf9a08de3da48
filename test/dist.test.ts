// The built package: `tsc -p tsconfig.build.json` writes dist/, and a plain JavaScript program that imports
// the package by its name `mpthreads` (through node_modules, as a user would install it) runs under plain
// `node`, with no tsx anywhere: a Process started from a .mjs task module sends a message through a Pipe.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { suite } from './_support/harness.ts';
import { run } from './_support/run-program.ts';

const root = fileURLToPath(new URL('..', import.meta.url));


const program = `
import { Process, Pipe, isMainThread, currentProcess, ProcessError } from 'mpthreads';

export function producer(conn, n) {
  conn.send({ value: n * 2, from: currentProcess().name, tsx: process.execArgv.join(' ').includes('tsx') });
}

if (isMainThread) {
  const [reader, writer] = Pipe(false);
  const p = new Process({ target: producer, module: import.meta.url, args: [writer, 21], name: 'js-producer' });
  p.start();
  const message = await reader.recv();
  await p.join();

  const missing = new Process({ target: 'noSuchExport', module: import.meta.url });
  process.stderr.write = () => true; // the expected traceback of the failing process is not our output
  missing.start();
  await missing.join();

  console.log(JSON.stringify({
    message,
    exitCode: p.exitCode,
    missing: { exitCode: missing.exitCode, isProcessError: missing.error instanceof ProcessError, message: missing.error?.message },
  }));
}
`;

const t = suite('dist: the built package under plain node');

t('tsc builds dist/, and a plain .mjs program importing "mpthreads" runs a Process and a Pipe', async () => {
  const build = await run('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, ms: 150_000 });
  assert.is(build.code, 0, `tsc failed:\n${build.stdout}\n${build.stderr}`);
  for (const file of ['dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/worker-main.js', 'dist/workers/bootstrap.mjs']) {
    assert.ok(existsSync(join(root, file)), `${file} was built`);
  }
  const types = await readFile(join(root, 'dist/lib/index.d.ts'), 'utf8');
  for (const name of ['Process', 'Pipe', 'Connection', 'currentProcess', 'ProcessError', 'EOFError']) {
    assert.ok(types.includes(name), `index.d.ts exports ${name}`);
  }

  // A user's project: node_modules/mpthreads -> this package, and a program that imports it by name.
  const dir = await mkdtemp(join(tmpdir(), 'mpthreads-dist-'));
  try {
    await mkdir(join(dir, 'node_modules'));
    await symlink(root, join(dir, 'node_modules', 'mpthreads'), 'dir');
    const file = join(dir, 'main.mjs');
    await writeFile(file, program);
    const result = await run(process.execPath, [file], { cwd: dir, ms: 60_000 });
    assert.is(result.signal, null, result.stderr);
    assert.is(result.code, 0, result.stderr);
    const out = JSON.parse(result.stdout.trim()) as {
      message: { value: number; from: string; tsx: boolean };
      exitCode: number;
      missing: { exitCode: number; isProcessError: boolean; message: string };
    };
    assert.equal(out.message, { value: 42, from: 'js-producer', tsx: false });
    assert.is(out.exitCode, 0);
    assert.is(out.missing.exitCode, 1);
    assert.is(out.missing.isProcessError, true);
    assert.match(out.missing.message, /noSuchExport/);
    assert.match(out.missing.message, /main\.mjs/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 240_000);

t.run();
