// The built package: `npm run build` writes dist/ (the single-file build dist/lib/mpthreads.js that the package
// exports, its declarations, and the worker bootstrap beside it), and a plain JavaScript program that imports
// the package by its name `mpthreads` (through node_modules, as a user would install it) runs under plain `node`,
// with no tsx anywhere: a Process started from a .mjs task module sends a message through a Pipe and items
// through a Queue (whose hub worker starts from the same file). The package's exports are the public API only:
// the workers' entry points are registered on globalThis, not exported. And a TypeScript program under tsx runs
// a .ts task module compiled, with no tsx in its worker. test/package.test.ts checks the packed tarball.
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
import * as mpthreads from 'mpthreads';
import { Process, Pipe, Queue, isMainThread, currentProcess, ProcessError } from 'mpthreads';

export async function producer(conn, n, q) {
  conn.send({ value: n * 2, from: currentProcess().name, tsx: process.execArgv.join(' ').includes('tsx') });
  for (let i = 0; i < 3; i++) await q.put({ i, isQueue: q instanceof Queue });
}

if (isMainThread) {
  const [reader, writer] = Pipe(false);
  const q = new Queue();
  const p = new Process({ target: producer, module: import.meta.url, args: [writer, 21, q], name: 'js-producer' });
  p.start();
  const message = await reader.recv();
  const items = [await q.get(), await q.get(), await q.get()];
  await p.join();

  const missing = new Process({ target: 'noSuchExport', module: import.meta.url });
  process.stderr.write = () => true; // the expected traceback of the failing process is not our output
  missing.start();
  await missing.join();

  console.log(JSON.stringify({
    internals: Object.keys(mpthreads).filter((name) => name.startsWith('_')),
    renamed: Object.entries(mpthreads).filter(([name, value]) => typeof value === 'function' && value.name !== name).map(([name, value]) => name + ' is ' + value.name),
    message,
    items,
    exitCode: p.exitCode,
    missing: { exitCode: missing.exitCode, isProcessError: missing.error instanceof ProcessError, message: missing.error?.message },
  }));
}
`;

const t = suite('dist: the built package, as a user installs it');

t(
  'npm run build writes dist/, and a plain .mjs program importing "mpthreads" runs a Process, a Pipe and a Queue',
  async () => {
    // `npm test` rebuilds dist/ here, so that it matches lib/: say so, or the pause looks like a hang.
    process.stdout.write('\n  building dist/ (npm run build) for this test...\n');
    const build = await run('npm', ['run', 'build'], { cwd: root, ms: 150_000 });
    assert.is(build.code, 0, `the build failed:\n${build.stdout}\n${build.stderr}`);
    for (const file of ['dist/lib/mpthreads.js', 'dist/lib/mpthreads.d.ts', 'dist/workers/bootstrap.mjs']) {
      assert.ok(existsSync(join(root, file)), `${file} was built`);
    }
    const types = await readFile(join(root, 'dist/lib/mpthreads.d.ts'), 'utf8');
    for (const name of ['Process', 'Pipe', 'Connection', 'currentProcess', 'ProcessError', 'EOFError']) {
      assert.ok(types.includes(name), `mpthreads.d.ts exports ${name}`);
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
        internals: string[];
        renamed: string[];
        message: { value: number; from: string; tsx: boolean };
        items: { i: number; isQueue: boolean }[];
        exitCode: number;
        missing: { exitCode: number; isProcessError: boolean; message: string };
      };
      assert.equal(out.internals, [], 'no internal entry point (__processMain, __hubMain) on the public module');
      // The bundler renames a class that names itself (\`_Connection\`) unless told to keep names.
      assert.equal(out.renamed, [], 'every exported class and function has its own name');
      assert.equal(out.message, { value: 42, from: 'js-producer', tsx: false });
      // The worker's Queue is the class its module imported as 'mpthreads': one module, not two copies.
      assert.equal(out.items, [
        { i: 0, isQueue: true },
        { i: 1, isQueue: true },
        { i: 2, isQueue: true },
      ]);
      assert.is(out.exitCode, 0);
      assert.is(out.missing.exitCode, 1);
      assert.is(out.missing.isProcessError, true);
      assert.match(out.missing.message, /noSuchExport/);
      assert.match(out.missing.message, /main\.mjs/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
  240_000,
);

// A TypeScript user of the built package: main.ts under tsx, its task module in task.ts (importing the package
// by name and a local TypeScript helper). The task module is compiled in the parent (lib/compile.ts), so the
// worker runs without tsx, and its 'mpthreads' is the very file the worker's runtime is.
const tsTask = `
import { Queue, currentProcess, type Connection } from 'mpthreads';
import { double } from './helper.js';

export async function producer(conn: Connection<object>, q: Queue<number>): Promise<void> {
  await q.put(double(21));
  conn.send({ from: currentProcess().name, execArgv: process.execArgv, isQueue: q instanceof Queue });
}
`;

const tsMain = `
import { Pipe, Process, Queue } from 'mpthreads';
import { producer } from './task.ts';

const [reader, writer] = Pipe<object>(false);
const q = new Queue<number>();
const p = new Process({ target: producer, module: new URL('./task.ts', import.meta.url), args: [writer, q], name: 'ts-producer' });
p.start();
const message = await reader.recv();
const item = await q.get();
await p.join();
console.log(JSON.stringify({ message, item, exitCode: p.exitCode }));
`;

t(
  'a TypeScript program under tsx using the built package: its task module runs compiled, without tsx in the worker',
  async () => {
    if (!existsSync(join(root, 'dist/lib/mpthreads.js'))) {
      const build = await run('npm', ['run', 'build'], { cwd: root, ms: 150_000 });
      assert.is(build.code, 0, `the build failed:\n${build.stdout}\n${build.stderr}`);
    }
    const dir = await mkdtemp(join(tmpdir(), 'mpthreads-dist-ts-'));
    try {
      await mkdir(join(dir, 'node_modules'));
      await symlink(root, join(dir, 'node_modules', 'mpthreads'), 'dir');
      await symlink(join(root, 'node_modules', 'tsx'), join(dir, 'node_modules', 'tsx'), 'dir');
      await writeFile(join(dir, 'package.json'), '{ "type": "module" }');
      await writeFile(join(dir, 'helper.ts'), 'export const double = (n: number): number => n * 2;\n');
      await writeFile(join(dir, 'task.ts'), tsTask);
      await writeFile(join(dir, 'main.ts'), tsMain);
      const result = await run(process.execPath, ['--import', 'tsx', join(dir, 'main.ts')], { cwd: dir, ms: 60_000 });
      assert.is(result.signal, null, result.stderr);
      assert.is(result.code, 0, result.stderr);
      const out = JSON.parse(result.stdout.trim()) as {
        message: { from: string; execArgv: string[]; isQueue: boolean };
        item: number;
        exitCode: number;
      };
      assert.equal(out.message, { from: 'ts-producer', execArgv: [], isQueue: true });
      assert.is(out.item, 42);
      assert.is(out.exitCode, 0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
  240_000,
);

t.run();
