// Where and when a run happened: stamped on the table, the JSON and the chart.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

export interface MachineStamp {
  date: string;
  node: string;
  v8: string;
  platform: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  /** 1-minute load average when the run started: other work on the machine skews results. */
  loadAvgAtStart: number;
  commit: string;
  /** True when lib/ or workers/ had uncommitted changes: the numbers are for the commit plus those changes. */
  dirty: boolean;
  peers: Record<string, string>;
  python?: string;
}

const root = fileURLToPath(new URL('../', import.meta.url));

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

function version(pkg: string): string {
  try {
    const json = JSON.parse(readFileSync(new URL(`../node_modules/${pkg}/package.json`, import.meta.url), 'utf8')) as {
      version: string;
    };
    return json.version;
  } catch {
    return 'missing';
  }
}

export function machineStamp(): MachineStamp {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    node: process.version,
    v8: process.versions.v8,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism?.() ?? cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    loadAvgAtStart: Number(os.loadavg()[0]!.toFixed(2)),
    commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown',
    dirty: git(['status', '--porcelain', '--', 'lib', 'workers']) !== '',
    peers: { piscina: version('piscina'), tinypool: version('tinypool'), workerpool: version('workerpool') },
  };
}

/** One line for headers: "Node v20 · AMD EPYC (2 cores) · commit abc1234+ · 2025-..." */
export function stampLine(m: MachineStamp): string {
  return `Node ${m.node} · ${m.cpu} (${m.cores} cores) · commit ${m.commit}${m.dirty ? ' + uncommitted lib changes' : ''} · ${m.date.slice(0, 16).replace('T', ' ')} UTC${m.python ? ` · Python ${m.python}` : ''}`;
}
