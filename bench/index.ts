// The benchmark suite's entry point (bench/README.md defines every case).
//
//   tsx bench/index.ts [filter] [--quick] [--python] [--no-python] [--json PATH]
//
//   filter       run only the cases whose name contains it, or any of 'a|b' (also passed to bench/python_mp.py)
//   --quick      smaller N, 1 small warm-up + 2 reps, no tinypool/workerpool, Python only with --python
//   --python     run the Python baseline in --quick mode too
//   --no-python  never run it
//   --json PATH  also write the JSON report to PATH
//
// The table goes to stdout, a progress line to stderr. Results go under bench/results/: a full unfiltered
// run writes latest.json, latest.svg and a timestamped copy of the JSON; a quick or filtered run writes
// quick.* or partial.* instead, so it never replaces the full results.
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { fanoutCases } from './cases/fanout.ts';
import { mpmcCases } from './cases/mpmc.ts';
import { poolCases } from './cases/pool.ts';
import { runPython } from './cases/python.ts';
import { roundtripCases } from './cases/roundtrip.ts';
import { spscCases } from './cases/spsc.ts';
import { SkipCase, startCases } from './cases/start.ts';
import { closeTeams, retire } from './cases/team.ts';
import type { BenchCase, CaseContext } from './cases/types.ts';
import { machineStamp } from './machine.ts';
import { computeRatios, renderTable, sortRows, writeJson, writeSvg, type Report, type Row } from './report.ts';
import { PAYLOAD_BYTES, type Payload } from './tasks/payloads.mjs';

interface Options {
  filter: string | undefined;
  quick: boolean;
  python: boolean | undefined;
  json: string | undefined;
}

const USAGE = 'usage: tsx bench/index.ts [filter] [--quick] [--python | --no-python] [--json PATH]';

function parseArgs(argv: string[]): Options {
  const o: Options = { filter: undefined, quick: false, python: undefined, json: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') o.quick = true;
    else if (a === '--python') o.python = true;
    else if (a === '--no-python') o.python = false;
    else if (a === '--json') {
      o.json = argv[++i];
      if (o.json === undefined) throw new Error(`--json needs a path\n${USAGE}`);
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else if (a.startsWith('-')) throw new Error(`unknown option ${a}\n${USAGE}`);
    else if (o.filter !== undefined) throw new Error(`one filter only (got "${o.filter}" and "${a}")\n${USAGE}`);
    else o.filter = a;
  }
  return o;
}

// --- progress line -----------------------------------------------------------------------------------------

const tty = process.stderr.isTTY === true;
let began = 0;
let lastLine = '';

function elapsed(): string {
  const s = Math.round((performance.now() - began) / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function progress(line: string): void {
  if (tty) {
    const text = `[${elapsed()}] ${line}`.slice(0, (process.stderr.columns ?? 100) - 1);
    process.stderr.write(`\r\x1b[K${text}`);
    lastLine = text;
  }
}

function log(line: string): void {
  if (tty && lastLine !== '') process.stderr.write('\r\x1b[K');
  lastLine = '';
  process.stderr.write(`[${elapsed()}] ${line}\n`);
}

// --- running -----------------------------------------------------------------------------------------------

const kCaseTimeoutMs = 300_000;

function emptyRow(c: BenchCase): Row {
  return {
    name: c.name,
    impl: c.impl,
    topology: c.topology,
    payload: c.payload,
    source: 'node',
    itemsPerS: null,
    mbPerS: null,
    p50us: null,
    p99us: null,
    n: null,
    reps: null,
    ratios: {},
  };
}

async function runCase(c: BenchCase, ctx: CaseContext): Promise<Row> {
  const base = emptyRow(c);
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no result within ${kCaseTimeoutMs / 1000} s`)), kCaseTimeoutMs);
    });
    const m = await Promise.race([c.run(ctx), timeout]);
    const bytes = PAYLOAD_BYTES[c.payload as Payload] ?? null;
    return {
      ...base,
      itemsPerS: m.itemsPerS,
      p50us: m.p50us,
      p99us: m.p99us,
      n: m.n,
      reps: m.reps,
      perRep: m.perRep,
      mbPerS: m.itemsPerS !== null && bytes !== null ? (m.itemsPerS * bytes) / 1e6 : null,
      seconds: (performance.now() - t0) / 1000,
      ...(m.note !== undefined ? { note: m.note } : {}),
    };
  } catch (error) {
    if (error instanceof SkipCase) return { ...base, skipped: error.message };
    // A failed case may leave its workers mid-stream: replace them.
    await retire('raw');
    await retire('mpthreads');
    const e = error as Error;
    return { ...base, error: e.stack ?? e.message, seconds: (performance.now() - t0) / 1000 };
  } finally {
    clearTimeout(timer);
  }
}

function summary(row: Row): string {
  if (row.error !== undefined) return `FAILED: ${row.error.split('\n')[0]}`;
  if (row.skipped !== undefined) return `skipped: ${row.skipped}`;
  const parts: string[] = [];
  if (row.itemsPerS !== null) parts.push(`${Math.round(row.itemsPerS).toLocaleString('en-US')} items/s`);
  if (row.mbPerS !== null) parts.push(`${row.mbPerS.toFixed(1)} MB/s`);
  if (row.p50us !== null) parts.push(`p50 ${row.p50us.toFixed(1)} µs, p99 ${row.p99us?.toFixed(1)} µs`);
  if (row.perRep !== undefined && row.topology !== 'start')
    parts.push(`reps ${row.perRep.map((x) => Math.round(x)).join(' ')}`);
  return `${parts.join(', ')} (${row.seconds?.toFixed(1)} s)`;
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  began = performance.now();
  const stamp = machineStamp();
  const notes: string[] = [];
  const mode = options.quick ? 'quick' : 'full';

  let cases = [...spscCases(), ...mpmcCases(), ...roundtripCases(), ...fanoutCases(), ...poolCases(), ...startCases()];
  if (options.filter !== undefined) {
    const alternatives = options.filter.split('|'); // 'spsc/int|spsc/object': either
    cases = cases.filter((c) => alternatives.some((a) => c.name.includes(a)));
  }
  if (options.quick) {
    const dropped = cases.filter((c) => c.fullOnly);
    if (dropped.length > 0)
      notes.push(
        `--quick skips ${dropped.map((c) => c.name).join(', ')}: run without --quick (\`npm run bench -- fanout\`, \`npm run bench -- /apply/\`, ...) for them`,
      );
    cases = cases.filter((c) => !c.fullOnly);
  }
  const runPy = options.python ?? !options.quick;
  log(
    `mpthreads bench, ${mode}${options.filter !== undefined ? `, filter "${options.filter}"` : ''}: ${cases.length} cases${runPy ? ' + Python' : ''}`,
  );

  const rows: Row[] = [];
  let teamsClosed = false;
  // An implementation that hung once (a timeout) is not given more chances to hang: its other cases are
  // skipped, each naming the case that hung.
  const hung = new Map<string, string>();
  for (const [i, c] of cases.entries()) {
    if (!teamsClosed && c.topology === 'start') {
      await closeTeams(); // the start children run alone
      teamsClosed = true;
    }
    const head = `[${i + 1}/${cases.length}] ${c.name}`;
    progress(head);
    const ctx: CaseContext = { quick: options.quick, progress: (detail) => progress(`${head}: ${detail}`) };
    const hungCase = hung.get(c.impl);
    const row =
      hungCase !== undefined ? { ...emptyRow(c), skipped: `not run: ${hungCase} hung` } : await runCase(c, ctx);
    if (row.error !== undefined && /no reply within|not finished within|no result within/.test(row.error))
      hung.set(c.impl, c.name);
    row.loadAvg = Number(os.loadavg()[0]!.toFixed(2));
    rows.push(row);
    log(`${head.padEnd(42)} ${summary(row)}`);
  }
  await closeTeams();
  const nodeSeconds = (performance.now() - began) / 1000;

  if (runPy) {
    const py = await runPython({
      quick: options.quick,
      filter: options.filter,
      progress: (line) => progress(`python: ${line}`),
    }).catch((error: Error) => ({ failed: error.message }));
    if ('failed' in py) {
      notes.push(`the Python baseline failed: ${py.failed.split('\n')[0]}`);
      log(`python: FAILED ${py.failed}`);
    } else if ('skipped' in py) {
      notes.push(py.skipped);
      log(py.skipped);
    } else {
      stamp.python = py.version;
      for (const r of py.rows) {
        rows.push({ ...r, source: 'python', ratios: {} });
        log(`python: ${r.name.padEnd(34)} ${Math.round(r.itemsPerS).toLocaleString('en-US')} items/s`);
      }
    }
  } else if (options.python !== false) {
    notes.push('--quick runs without the Python baseline (about 15 s more): add --python to include it');
  }

  sortRows(rows);
  computeRatios(rows);
  const totalSeconds = (performance.now() - began) / 1000;
  notes.push(
    `node cases took ${nodeSeconds.toFixed(1)} s${runPy ? `, Python ${(totalSeconds - nodeSeconds).toFixed(1)} s` : ''}`,
  );
  const loadAvgAtEnd = Number(os.loadavg()[0]!.toFixed(2));
  const report: Report = { stamp, mode, filter: options.filter ?? null, totalSeconds, loadAvgAtEnd, notes, rows };

  const results = fileURLToPath(new URL('./results/', import.meta.url));
  const written: string[] = [];
  if (!options.quick && options.filter === undefined) {
    writeJson(`${results}latest.json`, report);
    writeSvg(`${results}latest.svg`, report);
    const copy = `${results}${stamp.date.replace(/[:.]/g, '-')}.json`;
    writeJson(copy, report);
    written.push('bench/results/latest.json', 'bench/results/latest.svg', copy.slice(copy.indexOf('bench/results/')));
  } else {
    const base = options.quick ? 'quick' : 'partial';
    writeJson(`${results}${base}.json`, report);
    writeSvg(`${results}${base}.svg`, report);
    written.push(`bench/results/${base}.json`, `bench/results/${base}.svg`);
  }
  if (options.json !== undefined) {
    writeJson(options.json, report);
    written.push(options.json);
  }

  process.stdout.write(`${renderTable(report)}\n`);
  log(`done in ${totalSeconds.toFixed(1)} s; wrote ${written.join(', ')}`);
  const failed = rows.filter((r) => r.error !== undefined);
  if (failed.length > 0) {
    log(`${failed.length} case(s) FAILED:`);
    for (const r of failed) log(`  ${r.name}: ${r.error!.split('\n')[0]}`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`\n${error.message}\n`);
    process.exit(2);
  },
);
