// TypeScript task modules without a loader in the worker. A worker that imports a .ts file must register tsx
// first, and in Node 20 that starts a module-hooks thread per worker: several times the start of a JavaScript
// worker, and tens of MiB each. So the parent compiles the task module, and every TypeScript file it imports,
// with esbuild (tsx's own, found beside tsx) into .mjs files in a cache; the worker imports those with no
// loader at all, as fast as a JavaScript module.
//
// Each TypeScript file becomes one .mjs of its own, not a bundle, so that a module imported both by the runtime
// and by the task module (the library, when it is TypeScript itself) stays one module in the worker. Every
// import is resolved here, by esbuild's resolver with Node's conditions, and rewritten to the compiled
// counterpart of a TypeScript file or to the file: URL of anything else, so the compiled file can live
// anywhere. import.meta.url, .filename and .dirname are those of the source file, and an inline source map
// makes stack traces name the .ts file and its lines.
//
// Invariants:
//   A cached .mjs is used only while its manifest matches the source's content, the nearest tsconfig.json and
//     the compiler, and every file it imports still exists; and so on for each TypeScript file it imports.
//   A file's output name depends on its path only: an importer stays valid when what it imports is recompiled.
//   The .mjs is renamed into place before its manifest, so a manifest only ever names complete output.
//   What esbuild cannot do here (CommonJS TypeScript, a syntax error, an import it cannot resolve) gives
//     `undefined`: the worker then registers tsx as before, and tsx reports the error as it always did.
import { beforeBlocking } from './shared-wait.ts';
import { existsSync, lstatSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { threadId, type Worker } from 'node:worker_threads';
import { Kind, PROTOCOL_TAG, type BootData, type CompiledMessage } from './protocol.ts';

// node:crypto is loaded on first use: only a parent compiling a TypeScript module needs it, and importing it
// costs every worker ~2.5 ms of its start.
const requireBuiltin = createRequire(import.meta.url);
function sha256(): import('node:crypto').Hash {
  return (requireBuiltin('node:crypto') as typeof import('node:crypto')).createHash('sha256');
}

/** What a worker imports instead of TypeScript: file: URLs of compiled .mjs files (or of a JavaScript runtime). */
interface Compiled {
  runtime: string;
  module: string;
}

/** How to start a worker for a compiled TypeScript task module. */
export interface WorkerStart {
  /** BootData fields: the compiled URLs, or `pending` while esbuild runs. */
  boot: Pick<BootData, 'tsx'> & Partial<Pick<BootData, 'runtime' | 'compiled' | 'pending' | 'blocked' | 'heartbeat'>>;
  /** This thread's execArgv without the flags that load tsx (a worker that needs no loader), if it has any. */
  execArgv: string[] | undefined;
  /** Tells a worker started `pending` the rest of its BootData once esbuild is done. */
  deliver(worker: Worker): void;
}

interface Manifest {
  source: string;
  hash: string;
  tsconfig: string | null;
  compiler: string;
  /** The TypeScript files it imports (compiled beside it). */
  deps: string[];
  /** Every other file it imports by URL. */
  files: string[];
}

interface Esbuild {
  version: string;
  build(options: object): Promise<{ outputFiles: { text: string }[] }>;
  stop?(): void | Promise<void>;
}

interface Compiler {
  path: string;
  tag: string;
  /** Found beside tsx, so a worker can register tsx itself; false for an esbuild of its own. */
  besideTsx: boolean;
}

const typescript = /\.(?:c|m)?tsx?$/;

/**
 * Compiles `module` (a TypeScript file's path), and `runtime` (a URL) if it is TypeScript too, for a worker
 * with no loader. `undefined` when that cannot be done here: then the worker needs tsx.
 */
export function compileForWorker(runtime: string, module: string): WorkerStart | undefined {
  if (process.env.MPTHREADS_COMPILE === '0') return undefined;
  const runtimePath = runtime.endsWith('.ts') ? fileURLToPath(runtime) : undefined;
  const entries = runtimePath === undefined ? [module] : [runtimePath, module];
  if (!entries.every(isEsmTypeScript)) return undefined;
  const compiler = findCompiler(module);
  const dir = compiler === undefined ? undefined : cacheDir(module);
  if (compiler === undefined || dir === undefined) return undefined;
  const compiled = (): Compiled => ({
    runtime: runtimePath === undefined ? runtime : outputUrl(dir, runtimePath),
    module: outputUrl(dir, module),
  });
  const execArgv = execArgvWithoutTsx();
  if (entries.every((entry) => isCurrent(entry, dir, compiler.tag, new Set()))) {
    const { runtime, module } = compiled();
    return { boot: { tsx: false, runtime, compiled: module }, execArgv, deliver() {} };
  }
  const key = `${dir}\0${entries.map((entry) => `${entry}\0${hashFile(entry)}`).join('\0')}`;
  if (failed.has(key)) return undefined;
  const done = compileAll(entries, dir, compiler).then(compiled, () => {
    failed.add(key);
    return undefined;
  });
  const blocked = new Int32Array(new SharedArrayBuffer(4));
  awaitingCompile.add(blocked);
  beat();
  return {
    boot: {
      tsx: false,
      pending: true,
      blocked: blocked.buffer as SharedArrayBuffer,
      // Without tsx beside it, a worker cannot load the module itself: it waits for the parent, however busy.
      ...(compiler.besideTsx ? { heartbeat: heartbeat.buffer as SharedArrayBuffer } : {}),
    },
    execArgv,
    deliver(worker) {
      void done.then((result) => {
        awaitingCompile.delete(blocked);
        const rest: Partial<BootData> =
          result === undefined
            ? { pending: false, tsx: true }
            : { pending: false, runtime: result.runtime, compiled: result.module };
        const message: CompiledMessage = { [PROTOCOL_TAG]: Kind.Compiled, fields: rest };
        worker.postMessage(message); // dropped if the worker has exited meanwhile
      });
    },
  };
}

/**
 * Workers started `pending` whose compiled module this thread has not delivered yet. The delivery needs this
 * thread's event loop; a blocking call (shared-wait.ts) stops it, and would wait for ever on a worker that
 * waits for it. So before this thread blocks, each of them is told to register tsx itself instead.
 */
const awaitingCompile = new Set<Int32Array>();
/** Tells every worker waiting for its compiled module from this thread to register tsx itself instead. */
export function releaseAwaitingCompile(): void {
  for (const blocked of awaitingCompile) {
    Atomics.store(blocked, 0, 1);
    Atomics.notify(blocked, 0);
  }
  awaitingCompile.clear();
}
beforeBlocking(releaseAwaitingCompile, true); // last: the other hooks may start workers (a hub, a pool's)

/**
 * Moves on every kBeatMs while some worker waits for its compiled module and this thread's event loop turns. A
 * thread busy in synchronous code (a CPU loop right after start()) delivers nothing, and does not block in a
 * ...Sync call either (beforeBlocking above): the waiting workers see the count stand still, and register tsx
 * themselves rather than wait for as long as that lasts (bootstrap.mjs).
 */
const heartbeat = new Int32Array(new SharedArrayBuffer(4));
const kBeatMs = 20;
let beating: NodeJS.Timeout | undefined;

function beat(): void {
  beating ??= setInterval(() => {
    Atomics.add(heartbeat, 0, 1);
    if (awaitingCompile.size === 0) {
      clearInterval(beating);
      beating = undefined;
    }
  }, kBeatMs).unref();
}

/** Entries (with their content hashes) esbuild failed on in this thread: not tried again until they change. */
const failed = new Set<string>();

/** @internal `execArgv` without the flags that load tsx; `undefined` when it has none. */
export function execArgvWithoutTsx(execArgv: readonly string[] = process.execArgv): string[] | undefined {
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const flag = execArgv[i]!;
    const equals = flag.startsWith('--') ? flag.indexOf('=') : -1;
    const name = equals === -1 ? flag : flag.slice(0, equals);
    if (!preloadFlags.has(name)) {
      kept.push(flag);
    } else if (equals !== -1) {
      if (!isTsx(flag.slice(equals + 1))) kept.push(flag);
    } else {
      const value = execArgv[++i] ?? '';
      if (!isTsx(value)) kept.push(flag, value);
    }
  }
  return kept.length === execArgv.length ? undefined : kept;
}

/** The flags that take a module to load before the program (tsx's among them). */
const preloadFlags = new Set(['--import', '--require', '-r', '--loader', '--experimental-loader']);

function isTsx(specifier: string): boolean {
  return specifier === 'tsx' || specifier.startsWith('tsx/') || /[\\/]node_modules[\\/]tsx[\\/]/.test(specifier);
}

// ---------------------------------------------------------------------------------------------------------
// Which files, with what, and where

/** .mts, or .ts/.tsx in a package whose "type" is "module": what tsx would load as an ES module. */
function isEsmTypeScript(file: string): boolean {
  if (file.endsWith('.mts')) return true;
  if (file.endsWith('.cts') || !typescript.test(file)) return false;
  return packageType(dirname(file)) === 'module';
}

const packageTypes = new Map<string, string>();

function packageType(dir: string): string {
  let type = packageTypes.get(dir);
  if (type !== undefined) return type;
  const file = join(dir, 'package.json');
  if (existsSync(file)) {
    try {
      type = (JSON.parse(readFileSync(file, 'utf8')) as { type?: unknown }).type === 'module' ? 'module' : 'commonjs';
    } catch {
      type = 'commonjs';
    }
  } else {
    type = dirname(dir) === dir ? 'commonjs' : packageType(dirname(dir));
  }
  packageTypes.set(dir, type);
  return type;
}

let compilerFound: Compiler | null | undefined;

/** esbuild as tsx would use it: beside tsx (found from this library, then from the module), or on its own. */
function findCompiler(module: string): Compiler | undefined {
  if (compilerFound !== undefined) return compilerFound ?? undefined;
  const places = [import.meta.url, pathToFileURL(module).href];
  const besideTsx = places.map(
    (at) => () => createRequire(createRequire(at).resolve('tsx/package.json')).resolve('esbuild'),
  );
  const alone = places.map((at) => () => createRequire(at).resolve('esbuild'));
  compilerFound = null;
  for (const [i, find] of [...besideTsx, ...alone].entries()) {
    try {
      const path = find();
      const version = (
        JSON.parse(readFileSync(join(dirname(path), '..', 'package.json'), 'utf8')) as { version: string }
      ).version;
      const tag = `esbuild ${version}, node ${process.versions.node}, conditions [${conditions().join(',')}], mpthreads compile 2`;
      compilerFound = { path, tag, besideTsx: i < besideTsx.length };
      break;
    } catch {
      // not there: try the next place
    }
  }
  return compilerFound ?? undefined;
}

/**
 * node_modules/.cache/mpthreads beside the nearest node_modules above the module (as babel and eslint keep
 * theirs), else a directory of this user's own in the system's temporary directory.
 */
function cacheDir(module: string): string | undefined {
  // A directory of the user's choice (a read-only node_modules, a fresh cache for a test).
  const chosen = process.env.MPTHREADS_CACHE;
  if (chosen !== undefined && chosen !== '') {
    try {
      mkdirSync(chosen, { recursive: true });
      return chosen;
    } catch {
      return undefined;
    }
  }
  for (let dir = dirname(module); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'node_modules'))) {
      const cache = join(dir, 'node_modules', '.cache', 'mpthreads');
      try {
        mkdirSync(cache, { recursive: true });
        return cache;
      } catch {
        break;
      }
    }
    if (dirname(dir) === dir) break;
  }
  const uid = process.getuid?.() ?? 0;
  const cache = join(tmpdir(), `mpthreads-${uid}`);
  try {
    mkdirSync(cache, { recursive: true, mode: 0o700 });
    const stat = lstatSync(cache);
    // Another user could have made it first, in a shared /tmp: then its files are not ours to run.
    if (!stat.isDirectory() || (process.getuid !== undefined && stat.uid !== uid)) return undefined;
    return cache;
  } catch {
    return undefined;
  }
}

function outputPath(dir: string, source: string): string {
  const hash = sha256().update(source).digest('hex').slice(0, 16);
  return join(dir, `${basename(source).replace(/\.[^.]*$/, '')}-${hash}.mjs`);
}

function outputUrl(dir: string, source: string): string {
  return pathToFileURL(outputPath(dir, source)).href;
}

/**
 * What `derive` makes of a file's content, remembered while the file keeps its size and times: a start then
 * checks a cached graph with a stat per file instead of reading and hashing each one.
 */
function derived<T>(memo: Map<string, { stamp: string; value: T }>, file: string, derive: (content: Buffer) => T): T {
  const stat = statSync(file);
  const stamp = `${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}:${stat.ino}`;
  const known = memo.get(file);
  if (known?.stamp === stamp) return known.value;
  const value = derive(readFileSync(file));
  memo.set(file, { stamp, value });
  return value;
}

const hashes = new Map<string, { stamp: string; value: string }>();

function hashFile(file: string): string {
  return derived(hashes, file, (content) => sha256().update(content).digest('hex'));
}

const tsconfigs = new Map<string, string | null>();

/** The content hash of the tsconfig.json esbuild would read for `file` (the nearest one), or null. */
function tsconfigHash(file: string): string | null {
  const dir = dirname(file);
  let tsconfig = tsconfigs.get(dir);
  if (tsconfig === undefined) {
    tsconfig = nearestTsconfig(dir);
    tsconfigs.set(dir, tsconfig);
  }
  try {
    return tsconfig === null ? null : hashFile(tsconfig);
  } catch {
    tsconfigs.delete(dir); // removed: look again next time
    return null;
  }
}

function nearestTsconfig(dir: string): string | null {
  for (let at = dir; ; at = dirname(at)) {
    if (existsSync(join(at, 'tsconfig.json'))) return join(at, 'tsconfig.json');
    if (dirname(at) === at) return null;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The cache

const manifests = new Map<string, { stamp: string; value: Manifest }>();

function readManifest(dir: string, source: string): Manifest | undefined {
  try {
    return derived(
      manifests,
      `${outputPath(dir, source)}.json`,
      (content) => JSON.parse(content.toString('utf8')) as Manifest,
    );
  } catch {
    return undefined;
  }
}

/** The manifest of `source` if its output is current (its own file, not the files it imports), else undefined. */
function currentManifest(dir: string, source: string, compiler: string): Manifest | undefined {
  const manifest = readManifest(dir, source);
  if (manifest === undefined || manifest.source !== source || manifest.compiler !== compiler) return undefined;
  try {
    if (manifest.hash !== hashFile(source)) return undefined;
  } catch {
    return undefined;
  }
  if (manifest.tsconfig !== tsconfigHash(source)) return undefined;
  if (!manifest.files.every((file) => existsSync(file))) return undefined;
  return manifest;
}

/** Whether `source` and every TypeScript file it imports, transitively, have current output. */
function isCurrent(source: string, dir: string, compiler: string, seen: Set<string>): boolean {
  if (seen.has(source)) return true;
  seen.add(source);
  const manifest = currentManifest(dir, source, compiler);
  return manifest?.deps.every((dep) => isCurrent(dep, dir, compiler, seen)) === true;
}

function writeAtomically(file: string, text: string): void {
  const temporary = `${file}.${process.pid}-${threadId}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, file);
}

// ---------------------------------------------------------------------------------------------------------
// Compiling

let esbuild: Promise<Esbuild> | undefined;
let running = 0;

async function compileAll(entries: string[], dir: string, compiler: Compiler): Promise<void> {
  running++;
  let loaded: Esbuild | undefined;
  try {
    esbuild ??= import(pathToFileURL(compiler.path).href).then((m: { default?: Esbuild } & Esbuild) => m.default ?? m);
    loaded = await esbuild;
    const service = loaded;
    const visited = new Set<string>();
    const ensure = async (source: string): Promise<void> => {
      if (visited.has(source)) return;
      visited.add(source);
      const manifest =
        currentManifest(dir, source, compiler.tag) ?? (await compileOnce(service, source, dir, compiler.tag));
      await Promise.all(manifest.deps.map(ensure));
    };
    await Promise.all(entries.map(ensure));
  } finally {
    // esbuild's service is a process of its own: stop it until the next file to compile (the next build
    // starts it again). Synchronously, so that no build started meanwhile can be cut off.
    if (--running === 0) {
      esbuild = undefined;
      try {
        Promise.resolve(loaded?.stop?.()).catch(() => {});
      } catch {
        // already stopped
      }
    }
  }
}

/** Output being written in this thread: starts that need the same file at once wait for one compilation. */
const compiling = new Map<string, Promise<Manifest>>();

function compileOnce(esbuild: Esbuild, source: string, dir: string, compiler: string): Promise<Manifest> {
  const out = outputPath(dir, source);
  let manifest = compiling.get(out);
  if (manifest === undefined) {
    manifest = compileFile(esbuild, source, dir, compiler).finally(() => compiling.delete(out));
    compiling.set(out, manifest);
  }
  return manifest;
}

/** Marks what the plugin below asks esbuild's resolver, so that the plugin lets those requests through. */
const kInner = Symbol('mpthreads.resolve');

async function compileFile(esbuild: Esbuild, source: string, dir: string, compiler: string): Promise<Manifest> {
  const out = outputPath(dir, source);
  const deps = new Set<string>();
  const files = new Set<string>();
  const hash = hashFile(source);
  const tsconfig = tsconfigHash(source);
  const url = pathToFileURL(source).href;
  const result = await esbuild.build({
    entryPoints: [source],
    outfile: out,
    write: false,
    bundle: true, // only so that every import goes through the plugin below: each one stays external
    format: 'esm',
    platform: 'node',
    target: `node${process.versions.node}`,
    conditions: conditions(), // Node's: without esbuild's own "module"
    mainFields: ['main'],
    sourcemap: 'inline',
    sourcesContent: false,
    keepNames: true, // a class or function keeps its name (esbuild may rename one it rewrites: `_Connection`)
    logLevel: 'silent',
    define: {
      'import.meta.url': JSON.stringify(url),
      'import.meta.filename': JSON.stringify(source),
      'import.meta.dirname': JSON.stringify(dirname(source)),
    },
    plugins: [
      {
        name: 'mpthreads-imports',
        setup(build: EsbuildPluginBuild) {
          build.onResolve({ filter: /.*/ }, async (args) => {
            if (args.kind === 'entry-point' || args.pluginData === kInner) return undefined;
            // require() and require.resolve() in an ES module: left as written, as Node would run them.
            if (args.kind !== 'import-statement' && args.kind !== 'dynamic-import')
              return { path: args.path, external: true };
            const resolved = await build.resolve(args.path, {
              kind: args.kind,
              importer: args.importer,
              resolveDir: args.resolveDir,
              pluginData: kInner,
              with: args.with,
            });
            if (resolved.errors.length > 0) return { errors: resolved.errors };
            if (resolved.external) return { path: args.path, external: true }; // node: built-ins
            if (typescript.test(resolved.path)) {
              if (!isEsmTypeScript(resolved.path))
                return { errors: [{ text: `${resolved.path} is CommonJS TypeScript` }] };
              deps.add(resolved.path);
              return { path: outputUrl(dir, resolved.path), external: true };
            }
            files.add(resolved.path);
            return { path: pathToFileURL(resolved.path).href + (resolved.suffix ?? ''), external: true };
          });
        },
      },
    ],
  });
  const manifest: Manifest = { source, hash, tsconfig, compiler, deps: [...deps], files: [...files] };
  writeAtomically(out, result.outputFiles[0]!.text);
  writeAtomically(`${out}.json`, JSON.stringify(manifest));
  return manifest;
}

/** The resolve conditions of this thread's Node (`--conditions` flags included). */
function conditions(): string[] {
  const found: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--conditions' || flag === '-C') found.push(argv[++i] ?? '');
    else if (flag.startsWith('--conditions=')) found.push(flag.slice('--conditions='.length));
  }
  return found;
}

/** The part of esbuild's plugin API used above. */
interface EsbuildPluginBuild {
  onResolve(
    options: { filter: RegExp },
    callback: (args: {
      path: string;
      kind: string;
      importer: string;
      resolveDir: string;
      pluginData: unknown;
      with: Record<string, string>;
    }) => Promise<object | undefined>,
  ): void;
  resolve(
    path: string,
    options: object,
  ): Promise<{ path: string; external: boolean; suffix?: string; errors: { text: string }[] }>;
}
