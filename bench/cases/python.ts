// The Python multiprocessing baseline: runs bench/python_mp.py (standard library only) with python3, passing
// --quick and the filter through, and turns its JSON rows (python-pipe/..., python-queue/..., python-pool/...,
// python-single/...) into rows of this run. Its progress lines are forwarded to the progress callback.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Topology } from './types.ts';

const script = fileURLToPath(new URL('../python_mp.py', import.meta.url));

export interface PythonRow {
  name: string;
  impl: string;
  topology: Topology;
  payload: string;
  itemsPerS: number;
  mbPerS: number | null;
  p50us: number | null;
  p99us: number | null;
  n: number;
  reps: number;
  note?: string;
}

export type PythonResult = { version: string; rows: PythonRow[] } | { skipped: string };

interface PyJson {
  python: string;
  rows: {
    case: string;
    items_per_s: number;
    mb_per_s: number | null;
    p50_us: number | null;
    p99_us: number | null;
    n: number;
    reps: number;
    note?: string;
  }[];
}

export function runPython(options: {
  quick: boolean;
  filter: string | undefined;
  progress: (line: string) => void;
}): Promise<PythonResult> {
  const args = [script];
  if (options.quick) args.push('--quick');
  if (options.filter !== undefined) args.push('--filter', options.filter);
  return new Promise((resolve, reject) => {
    const child = spawn('python3', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let line = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      line += chunk;
      const lines = line.split('\n');
      line = lines.pop()!;
      for (const l of lines) if (l.trim() !== '') options.progress(l.trim());
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') resolve({ skipped: 'python3 is not installed: the Python rows are skipped' });
      else reject(error);
    });
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`python3 bench/python_mp.py exited with ${code}:\n${stderr.slice(-2000)}`));
        return;
      }
      const doc = JSON.parse(stdout) as PyJson;
      resolve({
        version: doc.python.split(' ')[0]!,
        rows: doc.rows.map((r) => {
          const [impl, topology, payload] = r.case.split('/') as [string, Topology, string];
          return {
            name: r.case,
            impl,
            topology,
            payload,
            itemsPerS: r.items_per_s,
            mbPerS: r.mb_per_s,
            p50us: r.p50_us,
            p99us: r.p99_us,
            n: r.n,
            reps: r.reps,
            ...(r.note !== undefined ? { note: r.note } : {}),
          };
        }),
      });
    });
  });
}
