// start: the time from `new Worker()` / `new Process().start()` / `new Pool()` to the first message (the
// first result) received in the parent. Each runtime is measured in a fresh child program, so the first start
// is cold:
//   raw, process-js       plain node with the built package (bench/start-js.mjs; `npm run build` first)
//   raw-tsx, process-ts   tsx with the TypeScript sources (bench/start-ts.ts); under tsx every worker,
//                         a raw one too, inherits tsx's loader
//   raw-2, pool           plain node with the built package (bench/start-pool.mjs): two raw Workers made
//                         together to both first messages, and a 2-worker Pool to its first apply's result
// p50/p99 are over the timed starts (nearest rank; with 10 starts p99 is the slowest one); items/s is left
// empty. The cold first start of each kind is in the note.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile } from '../tasks/payloads.mjs';
import { sizeOf, type BenchCase, type CaseContext, type Measurement } from './types.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** A case that cannot run in this configuration: reported as skipped, with the reason. */
export class SkipCase extends Error {
  override name = 'SkipCase';
}

interface ChildRow {
  impl: string;
  us: number[];
  firstUs: number;
}

const children = new Map<string, Promise<ChildRow[]>>();

export function startCases(): BenchCase[] {
  const add = (impl: string, child: Child): BenchCase => ({
    name: `${impl}/start/-`,
    impl,
    topology: 'start',
    payload: '-',
    run: (ctx) => startRow(ctx, impl, child),
  });
  return [
    add('raw', 'js'),
    add('process-js', 'js'),
    add('raw-tsx', 'ts'),
    add('process-ts', 'ts'),
    add('raw-2', 'pool'),
    add('pool', 'pool'),
  ];
}

/** Which child program measures a row: start-js.mjs, start-ts.ts, start-pool.mjs. */
type Child = 'js' | 'ts' | 'pool';

async function startRow(ctx: CaseContext, impl: string, child: Child): Promise<Measurement> {
  const reps = sizeOf('start', '-', ctx.quick).reps;
  const key = `${child}:${reps}`;
  let rows = children.get(key);
  if (rows === undefined) {
    rows = child === 'ts' ? runTsChild(ctx, reps) : runJsChild(ctx, reps, `bench/start-${child}.mjs`);
    children.set(key, rows);
  }
  const row = (await rows).find((r) => r.impl === impl);
  if (row === undefined) throw new Error(`start child did not report ${impl}`);
  const sorted = [...row.us].sort((a, b) => a - b);
  return {
    n: row.us.length,
    reps: row.us.length,
    itemsPerS: null,
    p50us: percentile(sorted, 50),
    p99us: percentile(sorted, 99),
    perRep: row.us,
    note: `first (cold) start ${(row.firstUs / 1000).toFixed(1)} ms`,
  };
}

/** A child program under plain node that imports the built package (dist/ is built first when stale). */
async function runJsChild(ctx: CaseContext, reps: number, script: string): Promise<ChildRow[]> {
  if (distIsStale()) {
    if (ctx.quick)
      throw new SkipCase('dist/ is missing or older than lib/: run `npm run build` to include it in --quick');
    ctx.progress('building dist/ (npm run build)');
    await run('npm', ['run', 'build']);
    if (distIsStale()) throw new Error('dist/ is still older than lib/ after the build');
  }
  ctx.progress(`node ${script} --reps ${reps}`);
  return parse(await run(process.execPath, [script, '--reps', String(reps)]));
}

async function runTsChild(ctx: CaseContext, reps: number): Promise<ChildRow[]> {
  ctx.progress(`tsx bench/start-ts.ts --reps ${reps}`);
  const tsxCli = join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs');
  return parse(await run(process.execPath, [tsxCli, 'bench/start-ts.ts', '--reps', String(reps)]));
}

function parse(stdout: string): ChildRow[] {
  return (JSON.parse(stdout) as { rows: ChildRow[] }).rows;
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: root, timeout: 300_000, maxBuffer: 1 << 24 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${[file, ...args].join(' ')} failed: ${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** True when dist/lib/mpthreads.js is missing or older than any file in lib/ or workers/ (subdirectories too). */
function distIsStale(): boolean {
  const built = join(root, 'dist', 'lib', 'mpthreads.js');
  if (!existsSync(built)) return true;
  const builtAt = statSync(built).mtimeMs;
  for (const dir of ['lib', 'workers']) {
    for (const name of readdirSync(join(root, dir), { recursive: true }) as string[]) {
      if (statSync(join(root, dir, name)).mtimeMs > builtAt) return true;
    }
  }
  return false;
}
