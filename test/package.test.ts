// The package as a user receives it. `npm pack` runs on a copy of this repository that has no dist/, as a fresh
// clone or a git install has, so the pack must build dist/ by itself. The tarball is installed into a new app with
// `npm install <tarball>`. There, a plain .mjs program and a .ts program run under tsx each do a Process + Pipe +
// Queue round trip and exit by themselves. A strict consumer compiles with skipLibCheck off. require() fails with
// a message that says the package is ESM-only and how to load it. The tarball holds only what is used.
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { suite } from './_support/harness.ts';
import { run, type Ran } from './_support/run-program.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const requireHere = createRequire(import.meta.url);

/** What the tarball holds besides declarations: the bundle and the queue hub's (with their source maps), the
 * worker bootstrap the bundle starts workers from, the file `require('mpthreads')` lands on, and npm's usual
 * three. */
const SHIPPED = [
  'LICENSE',
  'README.md',
  'package.json',
  'dist/lib/mpthreads.js',
  'dist/lib/mpthreads.js.map',
  'dist/lib/mpthreads.d.ts',
  'dist/lib/queue-hub.js',
  'dist/lib/queue-hub.js.map',
  'dist/lib/redis.js',
  'dist/lib/redis.d.ts',
  'dist/workers/bootstrap.mjs',
  'dist/workers/messages.mjs',
  'lib/esm-only.cjs',
];

// A Process doubles what it receives through a Pipe and puts it on a Queue (with a pad over 1 KiB, so that the
// item goes through the queue's hub, a worker of its own bundle, rather than its hand-off ring); the main thread
// checks both, and closes nothing: the program must still exit by itself.
const program = (typed: boolean) => `
import { Process, Pipe, Queue, isMainThread${typed ? ', type Connection' : ''} } from 'mpthreads';

export async function doubler(conn${typed ? ': Connection<number>' : ''}, q${typed ? ': Queue<{ doubled: number; isQueue: boolean; pad: string }>' : ''}) {
  const n = await conn.recv();
  conn.send(n * 2);
  await q.put({ doubled: n * 2, isQueue: q instanceof Queue, pad: 'x'.repeat(2048) });
}

if (isMainThread) {
  const [here, there] = Pipe${typed ? '<number>' : ''}();
  const q = new Queue${typed ? '<{ doubled: number; isQueue: boolean; pad: string }>' : ''}();
  const p = new Process({ target: doubler, module: import.meta.url, args: [there, q] });
  p.start();
  here.send(21);
  const reply${typed ? ': number' : ''} = await here.recv();
  const item = await q.get();
  await p.join();
  ${
    typed
      ? `// Types are real, not any: a wrong item type does not compile.
  // @ts-expect-error a string is not a { doubled, isQueue } item
  if (false) await q.put('not an item');
  // Transfer lists type-check (they were \`never\` under @types/node 25+, whose postMessage is overloaded).
  if (false) {
    const buffer = new ArrayBuffer(8);
    here.send(1, { transfer: [buffer] });
    await q.put(item, { transfer: [buffer] });
  }`
      : ''
  }
  const { pad, ...rest } = item;
  console.log(JSON.stringify({ reply, item: rest, pad: pad.length, exitCode: p.exitCode }));
}
`;

const expected = { reply: 42, item: { doubled: 42, isQueue: true }, pad: 2048, exitCode: 0 };

interface Packed {
  app: string;
  tarballFiles: string[];
}

const temps: string[] = [];
let packing: Promise<Packed> | undefined;

/** Packs a dist-less copy of the repository and installs the tarball into a new app, once for all tests. */
function packed(): Promise<Packed> {
  packing ??= (async () => {
    // The copy: the working tree without dist/ (nor .git or node_modules); its node_modules is this one's, so
    // the build that `npm pack` must run finds tsc and esbuild.
    const copy = await mkdtemp(join(tmpdir(), 'mpthreads-pack-src-'));
    temps.push(copy);
    const skip = new Set(['node_modules', 'dist', '.git', '.scratch'].map((name) => join(root, name)));
    await cp(root, copy, { recursive: true, filter: (source) => !skip.has(source.replace(/\/$/, '')) });
    await symlink(join(root, 'node_modules'), join(copy, 'node_modules'), 'dir');

    // Like dist.test.ts, this builds dist/ (in the copy): say so, or the pause looks like a hang.
    process.stdout.write(
      '\n  npm pack on a copy of the repository (it builds dist/ there), then npm install into a new app...\n',
    );
    const out = await mkdtemp(join(tmpdir(), 'mpthreads-pack-out-'));
    temps.push(out);
    const pack = check(
      await run('npm', ['pack', '--json', '--pack-destination', out], { cwd: copy, ms: 180_000 }),
      'npm pack',
    );
    // npm prints the build's own output first; the JSON report is the last thing on stdout.
    const report = JSON.parse(pack.stdout.slice(pack.stdout.lastIndexOf('\n[') + 1)) as {
      filename: string;
      files: { path: string }[];
    }[];
    const tarballFiles = report[0]!.files.map((f) => f.path).sort();

    // The app. npm would also install the peer dependency @types/node from the registry; the test stays offline
    // (--offline: the tarball has no dependencies, so there is nothing to fetch; --legacy-peer-deps: do not try
    // to fetch the peer), and links this repository's @types/node (and its undici-types) in its place. tsx is
    // linked too, as a user who writes TypeScript task modules installs it.
    const app = await mkdtemp(join(tmpdir(), 'mpthreads-pack-app-'));
    temps.push(app);
    await writeFile(
      join(app, 'package.json'),
      JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }),
    );
    check(
      await run(
        'npm',
        ['install', join(out, report[0]!.filename), '--offline', '--legacy-peer-deps', '--no-audit', '--no-fund'],
        { cwd: app, ms: 120_000 },
      ),
      'npm install <tarball>',
    );
    await mkdir(join(app, 'node_modules', '@types'), { recursive: true });
    await symlink(join(root, 'node_modules', '@types', 'node'), join(app, 'node_modules', '@types', 'node'), 'dir');
    await symlink(join(root, 'node_modules', 'undici-types'), join(app, 'node_modules', 'undici-types'), 'dir');
    await symlink(join(root, 'node_modules', 'tsx'), join(app, 'node_modules', 'tsx'), 'dir');
    return { app, tarballFiles };
  })();
  return packing;
}

function check(result: Ran, what: string): Ran {
  assert.is(
    result.code,
    0,
    `${what} failed (exit ${result.code}, signal ${result.signal}):\n${result.stdout}\n${result.stderr}`,
  );
  return result;
}

/** The declaration files reachable from `entry` by relative imports: the ones a consumer's compiler reads. */
async function declarationClosure(packageDir: string, entry: string): Promise<string[]> {
  const seen = new Set<string>();
  const visit = async (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = await readFile(join(packageDir, file), 'utf8');
    for (const [, spec] of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      await visit(posix.join(posix.dirname(file), spec!.replace(/\.(ts|js)$/, '.d.ts')));
    }
  };
  await visit(entry);
  return [...seen].sort();
}

const t = suite('package: npm pack without a build, installed into a new app', 60_000);

t(
  'the tarball holds the bundle, its declarations, the worker bootstrap, README, LICENSE and nothing else',
  async () => {
    const { app, tarballFiles } = await packed();
    const installed = join(app, 'node_modules', 'mpthreads');
    const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as {
      exports: { '.': { types: string } };
      peerDependencies?: Record<string, string>;
    };
    const types = manifest.exports['.'].types.replace(/^\.\//, '');
    const declarations = await declarationClosure(installed, types);
    assert.equal(declarations, ['dist/lib/mpthreads.d.ts'], 'the declarations are one file');
    assert.equal(tarballFiles, [...SHIPPED].sort(), 'the tarball holds exactly what is used');
    // The declarations import node:worker_threads, so the package says it needs Node's types.
    assert.ok(manifest.peerDependencies?.['@types/node'], 'package.json declares @types/node');
  },
  300_000,
);

t(
  'a plain .mjs program importing "mpthreads" runs a Process, a Pipe and a Queue, then exits by itself',
  async () => {
    const { app } = await packed();
    await writeFile(join(app, 'main.mjs'), program(false));
    const result = check(await run(process.execPath, ['main.mjs'], { cwd: app, ms: 60_000 }), 'node main.mjs');
    assert.equal(JSON.parse(result.stdout.trim()), expected);
  },
  300_000,
);

t(
  'a .ts program run with tsx does the same',
  async () => {
    const { app } = await packed();
    await writeFile(join(app, 'main.ts'), program(true));
    const result = check(
      await run(process.execPath, [requireHere.resolve('tsx/cli'), 'main.ts'], { cwd: app, ms: 90_000 }),
      'tsx main.ts',
    );
    assert.equal(JSON.parse(result.stdout.trim()), expected);
  },
  300_000,
);

/** Compiles the typed program, strict with skipLibCheck off, in `dir` (where 'mpthreads' and Node's types resolve). */
async function compileTyped(dir: string): Promise<void> {
  await writeFile(join(dir, 'main.ts'), program(true));
  await writeFile(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        skipLibCheck: false,
        noEmit: true,
      },
      files: ['main.ts'],
    }),
  );
  const tsc = join(dirname(requireHere.resolve('typescript/package.json')), 'bin', 'tsc');
  check(await run(process.execPath, [tsc, '-p', '.'], { cwd: dir, ms: 90_000 }), 'tsc -p .');
}

t(
  'a strict TypeScript consumer compiles against the published declarations (skipLibCheck off)',
  async () => {
    const { app } = await packed();
    await compileTyped(app);
  },
  300_000,
);

t(
  'it compiles with the newest @types/node too, which is what npm gives a user for the peer dependency',
  async () => {
    const { app } = await packed();
    // A second app: the installed package, with the newest @types/node (a dev dependency under an alias) as
    // its Node types; that package's own undici-types resolves from where it really is.
    const newest = await mkdtemp(join(tmpdir(), 'mpthreads-pack-newest-'));
    temps.push(newest);
    await mkdir(join(newest, 'node_modules', '@types'), { recursive: true });
    await symlink(join(app, 'node_modules', 'mpthreads'), join(newest, 'node_modules', 'mpthreads'), 'dir');
    await symlink(
      join(root, 'node_modules', '@types', 'node-latest'),
      join(newest, 'node_modules', '@types', 'node'),
      'dir',
    );
    await writeFile(join(newest, 'package.json'), JSON.stringify({ name: 'newest', private: true, type: 'module' }));
    await compileTyped(newest);
  },
  300_000,
);

t(
  'mpthreads/redis imports without the Redis client installed; connect() then says to install it',
  async () => {
    const { app } = await packed();
    await writeFile(
      join(app, 'redis.mjs'),
      `import { connect, ProcessError, RedisQueue } from 'mpthreads/redis';
import { ClosedError } from 'mpthreads';
const { ClosedError: SameClosedError } = await import('mpthreads/redis');
try {
  await connect('redis://127.0.0.1:1');
  console.log('connected?');
} catch (error) {
  console.log(JSON.stringify({ code: error.code, message: error.message, process: error instanceof ProcessError, queue: typeof RedisQueue, same: ClosedError === SameClosedError }));
}
`,
    );
    const result = check(await run(process.execPath, ['redis.mjs'], { cwd: app, ms: 30_000 }), 'node redis.mjs');
    const out = JSON.parse(result.stdout.trim()) as Record<string, unknown>;
    assert.is(out.code, 'ERR_MODULE_LOAD');
    assert.match(String(out.message), 'npm install redis');
    assert.is(out.process, true);
    assert.is(out.queue, 'function');
    assert.is(out.same, true, 'one copy of the library: the core and mpthreads/redis share their classes');
  },
  300_000,
);

t(
  'require("mpthreads") and require("mpthreads/redis") fail with a message that says the package is ESM-only and how to load it',
  async () => {
    const { app } = await packed();
    await writeFile(join(app, 'require.cjs'), `require('mpthreads');\n`);
    const result = await run(process.execPath, ['require.cjs'], { cwd: app, ms: 30_000 });
    assert.is.not(result.code, 0, 'require() failed');
    assert.match(result.stderr, /ESM-only/);
    assert.match(result.stderr, /import \{[^}]*\} from 'mpthreads'/);
    assert.match(result.stderr, /await import\('mpthreads'\)/);
    // The subpath lands on the same file, whose message names it too.
    await writeFile(join(app, 'require-redis.cjs'), `require('mpthreads/redis');\n`);
    const redis = await run(process.execPath, ['require-redis.cjs'], { cwd: app, ms: 30_000 });
    assert.is.not(redis.code, 0, "require('mpthreads/redis') failed");
    assert.match(redis.stderr, /ESM-only: require\(\) cannot load 'mpthreads' or 'mpthreads\/redis'/);
    assert.match(redis.stderr, /import \{ connect \} from 'mpthreads\/redis'/);
    // ...and what the message advises works from CommonJS.
    await writeFile(join(app, 'import.cjs'), `import('mpthreads').then((m) => console.log(typeof m.Queue));\n`);
    const imported = check(
      await run(process.execPath, ['import.cjs'], { cwd: app, ms: 30_000 }),
      'import() from CommonJS',
    );
    assert.is(imported.stdout.trim(), 'function');
  },
  300_000,
);

t.after(async () => {
  await Promise.all(temps.map((dir) => rm(dir, { recursive: true, force: true })));
});

t.run();
