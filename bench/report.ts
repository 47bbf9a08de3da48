// The results of a run: rows (this run's cases and Python's), the ratio columns computed from them, the
// table printed on stdout, and the JSON and SVG files under bench/results/.
//
// Every ratio is a speed ratio between two rows of this run: > 1 means the row is faster than the one it is
// compared with. Throughput rows compare items/s (round trips/s, tasks/s); start rows compare 1 / p50.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { PAYLOADS } from './tasks/payloads.mjs';
import { renderChart } from './chart.ts';
import { stampLine, type MachineStamp } from './machine.ts';
import { MPTHREADS_IMPLS, type Topology } from './cases/types.ts';

export interface Ratios {
  /** queue or simplequeue row ÷ the pipe row (python-queue ÷ python-pipe for Python). */
  queuePipe?: number;
  /** mpthreads row ÷ the raw row (start: process-js vs raw, process-ts vs raw-tsx). */
  vsRaw?: number;
  /** mpthreads row ÷ the raw-batched row. */
  vsRawBatched?: number;
  /** pipe ÷ python-pipe; queue, simplequeue ÷ python-queue; pool ÷ python-pool (same topology). */
  vsPython?: number;
  /** fan-out row ÷ the piscina row; a Pool-case row ÷ piscina's (pool/map ÷ piscina/apply: piscina has no map). */
  vsPiscina?: number;
  /** cpu row ÷ the one-thread row of its runtime: single/cpu (python-pool: python-single/cpu). */
  vsSingle?: number;
}

export interface Row {
  name: string;
  impl: string;
  topology: Topology;
  payload: string;
  source: 'node' | 'python';
  itemsPerS: number | null;
  mbPerS: number | null;
  p50us: number | null;
  p99us: number | null;
  n: number | null;
  reps: number | null;
  perRep?: number[];
  seconds?: number;
  /** 1-minute load average when the case ended (other work on the machine makes a row noisy). */
  loadAvg?: number;
  note?: string;
  /** The case failed: what went wrong. No figures are reported for it. */
  error?: string;
  /** The case was not run in this configuration, and why. */
  skipped?: string;
  ratios: Ratios;
}

export interface Report {
  stamp: MachineStamp;
  mode: 'full' | 'quick';
  filter: string | null;
  totalSeconds: number;
  /** 1-minute load average when the run ended. */
  loadAvgAtEnd: number;
  notes: string[];
  rows: Row[];
}

const TOPOLOGY_ORDER: Topology[] = ['spsc', 'mpmc', 'roundtrip', 'fanout', 'map', 'apply', 'imap', 'cpu', 'start'];
export const IMPL_ORDER = [
  'raw',
  'raw-batched',
  'pipe',
  'queue',
  'simplequeue',
  'joinablequeue',
  'single',
  'raw-2',
  'pool',
  'python-pipe',
  'python-queue',
  'python-single',
  'python-pool',
  'piscina',
  'tinypool',
  'workerpool',
  'raw-tsx',
  'process-js',
  'process-ts',
];
/** Start rows: each baseline just above the row compared with it (raw-2 with pool). */
const START_ORDER = ['raw', 'raw-tsx', 'process-js', 'process-ts', 'raw-2', 'pool'];
const PAYLOAD_ORDER: string[] = [...PAYLOADS, '1ms', '-'];

function rank(list: readonly string[], value: string): number {
  const i = list.indexOf(value);
  return i === -1 ? list.length : i;
}

export function sortRows(rows: Row[]): Row[] {
  return rows.sort(
    (a, b) =>
      rank(TOPOLOGY_ORDER, a.topology) - rank(TOPOLOGY_ORDER, b.topology) ||
      rank(PAYLOAD_ORDER, a.payload) - rank(PAYLOAD_ORDER, b.payload) ||
      (a.topology === 'start'
        ? rank(START_ORDER, a.impl) - rank(START_ORDER, b.impl)
        : rank(IMPL_ORDER, a.impl) - rank(IMPL_ORDER, b.impl)),
  );
}

/** Fills every row's ratio columns from the other rows of the same run. */
export function computeRatios(rows: Row[]): void {
  const find = (impl: string, topology: string, payload: string) =>
    rows.find(
      (r) =>
        r.impl === impl &&
        r.topology === topology &&
        r.payload === payload &&
        r.error === undefined &&
        r.skipped === undefined,
    );
  const speed = (r: Row | undefined): number | undefined => {
    if (r === undefined) return undefined;
    if (r.topology === 'start') return r.p50us ? 1 / r.p50us : undefined;
    return r.itemsPerS ?? undefined;
  };
  const ratio = (row: Row, other: Row | undefined) => {
    const a = speed(row),
      b = speed(other);
    return a !== undefined && b !== undefined && b > 0 ? a / b : undefined;
  };
  for (const row of rows) {
    if (row.error !== undefined || row.skipped !== undefined) continue;
    const { impl, topology, payload } = row;
    const r: Ratios = {};
    if (impl === 'queue' || impl === 'simplequeue') r.queuePipe = ratio(row, find('pipe', topology, payload));
    if (impl === 'python-queue') r.queuePipe = ratio(row, find('python-pipe', topology, payload));
    if ((MPTHREADS_IMPLS as readonly string[]).includes(impl)) {
      const rawImpl = impl === 'process-ts' ? 'raw-tsx' : impl === 'pool' ? 'raw-2' : 'raw';
      r.vsRaw = ratio(row, find(rawImpl, topology, payload));
      r.vsRawBatched = ratio(row, find('raw-batched', topology, payload));
    }
    if (impl === 'pipe') r.vsPython = ratio(row, find('python-pipe', topology, payload));
    if (impl === 'queue' || impl === 'simplequeue') r.vsPython = ratio(row, find('python-queue', topology, payload));
    // Not cpu: Python's cpu task is the same loop made shorter (~1 ms in CPython), so only its own ratios count.
    if (impl === 'pool' && POOL_TOPOLOGIES.includes(topology) && topology !== 'cpu')
      r.vsPython = ratio(row, find('python-pool', topology, payload));
    if (topology === 'fanout' && impl !== 'piscina') r.vsPiscina = ratio(row, find('piscina', topology, payload));
    if (POOL_TOPOLOGIES.includes(topology) && ['pool', 'tinypool', 'workerpool'].includes(impl)) {
      // piscina has no map: its way to map is its way to apply, run() per task (the piscina/apply row).
      r.vsPiscina = ratio(row, find('piscina', topology === 'map' ? 'apply' : topology, payload));
    }
    if (topology === 'cpu' && impl !== 'single' && impl !== 'python-single')
      r.vsSingle = ratio(row, find(row.source === 'python' ? 'python-single' : 'single', topology, payload));
    for (const key of Object.keys(r) as (keyof Ratios)[]) if (r[key] === undefined) delete r[key];
    row.ratios = r;
  }
}

/** The Pool cases' topologies (bench/cases/pool.ts and python_mp.py's pool cases). */
const POOL_TOPOLOGIES: readonly string[] = ['map', 'apply', 'imap', 'cpu'];

// --- table -------------------------------------------------------------------------------------------------

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const one = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });

function fmtRatio(x: number | undefined): string {
  if (x === undefined) return '';
  return x >= 10 ? `${x.toFixed(0)}×` : x >= 0.1 ? `${x.toFixed(2)}×` : `${x.toFixed(3)}×`;
}

function fmt(x: number | null, format: Intl.NumberFormat): string {
  return x === null || !Number.isFinite(x) ? '' : format.format(x);
}

// Each column with the line that explains it under the table: a reader who has not read this file (or
// bench/README.md) should still know what 'vs raw-batched' divides by what.
const COLUMNS: { header: string; right: boolean; legend: string }[] = [
  { header: 'case', right: false, legend: '<impl>/<topology>/<payload>; bench/README.md defines each case' },
  {
    header: 'items/s',
    right: true,
    legend:
      'items per second (round trips for roundtrip, tasks for fanout and the pool cases), median of the timed repetitions',
  },
  { header: 'MB/s', right: true, legend: 'items/s times the payload size (buffer and string payloads)' },
  {
    header: 'p50 µs',
    right: true,
    legend: 'median latency: of one round trip, or (start rows) from new Worker/Process to its first message',
  },
  { header: 'p99 µs', right: true, legend: '99th-percentile latency, measured as p50' },
  { header: 'queue/pipe', right: true, legend: "this queue's row ÷ the pipe's (Python's rows: its queue ÷ its pipe)" },
  {
    header: 'vs raw',
    right: true,
    legend:
      'this row ÷ raw: a bare MessagePort, one postMessage per item (start: a bare Worker, under tsx for process-ts); pool rows ÷ raw-2: two bare Workers (pool/start: started together; pool/cpu: each looping over half the tasks)',
  },
  {
    header: 'vs raw-batched',
    right: true,
    legend: 'this row ÷ raw-batched: a bare MessagePort posting arrays of 1,000 items',
  },
  {
    header: 'vs Python',
    right: true,
    legend:
      "this row ÷ Python's multiprocessing Pipe (pipe rows), Queue (queue rows) or Pool (pool rows: python-pool/map = map with automatic chunks, /imap = imap with chunksize 1, /apply = apply_async; not cpu, whose Python task is shorter)",
  },
  {
    header: 'vs piscina',
    right: true,
    legend:
      'this row ÷ the piscina pool running the same tasks (pool/map ÷ piscina/apply: piscina has no map, so run() per task is its map too)',
  },
  {
    header: 'vs single',
    right: true,
    legend:
      'cpu rows: this row ÷ one thread running the same tasks in a loop (single/cpu; python-single/cpu for Python)',
  },
  { header: 'note', right: false, legend: 'what the figures leave out, or why the case failed or was skipped' },
];

function cells(row: Row): string[] {
  if (row.error !== undefined)
    return [row.name, 'FAILED', '', '', '', '', '', '', '', '', '', row.error.split('\n')[0]!.slice(0, 160)];
  if (row.skipped !== undefined) return [row.name, 'skipped', '', '', '', '', '', '', '', '', '', row.skipped];
  const r = row.ratios;
  return [
    row.name,
    fmt(row.itemsPerS, int),
    fmt(row.mbPerS, one),
    fmt(row.p50us, row.topology === 'start' ? int : one),
    fmt(row.p99us, row.topology === 'start' ? int : one),
    fmtRatio(r.queuePipe),
    fmtRatio(r.vsRaw),
    fmtRatio(r.vsRawBatched),
    fmtRatio(r.vsPython),
    fmtRatio(r.vsPiscina),
    fmtRatio(r.vsSingle),
    row.note ?? '',
  ];
}

export function renderTable(report: Report): string {
  const body = report.rows.map(cells);
  // Columns that are empty in every row (MB/s when no payload is a buffer, vs Python in a run without it) are
  // left out, and so is their legend line.
  const shown = COLUMNS.map((_, i) => i).filter((i) => i === 0 || body.some((b) => b[i] !== ''));
  const widths = COLUMNS.map((c, i) => Math.max(c.header.length, ...body.map((b) => b[i]!.length)));
  const line = (values: string[]) =>
    shown
      .map((i) => (COLUMNS[i]!.right ? values[i]!.padStart(widths[i]!) : values[i]!.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out: string[] = [];
  out.push(
    `mpthreads benchmarks (${report.mode}${report.filter !== null ? `, filter "${report.filter}"` : ''}) — ${stampLine(report.stamp)}`,
  );
  out.push(
    `1-min load average ${report.stamp.loadAvgAtStart} at start, ${report.loadAvgAtEnd} at end (${report.stamp.cores} cores); total ${report.totalSeconds.toFixed(1)} s`,
  );
  out.push('');
  out.push(line(COLUMNS.map((c) => c.header)));
  out.push(shown.map((i) => '-'.repeat(widths[i]!)).join('  '));
  let topology: string | undefined;
  report.rows.forEach((row, i) => {
    if (topology !== undefined && row.topology !== topology) out.push('');
    topology = row.topology;
    out.push(line(body[i]!));
  });
  out.push('');
  out.push(
    'Columns (a ratio compares two rows of this run with the same topology and payload unless its line says otherwise;',
  );
  out.push('> 1: this row is faster; start rows compare 1 / p50):');
  const legendWidth = Math.max(...shown.map((i) => COLUMNS[i]!.header.length));
  for (const i of shown) out.push(`  ${COLUMNS[i]!.header.padEnd(legendWidth)}  ${COLUMNS[i]!.legend}`);
  for (const note of report.notes) out.push(`Note: ${note}`);
  return out.join('\n');
}

// --- files -------------------------------------------------------------------------------------------------

export function writeJson(path: string, report: Report): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
}

export function writeSvg(path: string, report: Report): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, renderChart(report));
}
