// Running things in a child process with a deadline: scenarios that need --expose-gc (test/stress/child.ts)
// and small programs that must end by themselves.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('../..', import.meta.url));
const childEntry = fileURLToPath(new URL('../stress/child.ts', import.meta.url));

export interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** performance.now() when each stdout line arrived, by line. */
  lineTimes: Map<string, number>;
  exitedAt: number;
  timedOut: boolean;
}

/** Runs a command; kills it (SIGKILL) past `ms` and reports timedOut instead of hanging. */
export function run(command: string, args: string[], ms: number, env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // No colours (uvu sets FORCE_COLOR): the output is parsed.
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env, NO_COLOR: '1' };
    delete childEnv.FORCE_COLOR;
    const child = spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: childEnv });
    let stdout = '';
    let stderr = '';
    let partial = '';
    const lineTimes = new Map<string, number>();
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) if (!lineTimes.has(line)) lineTimes.set(line, performance.now());
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, ms);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, lineTimes, exitedAt: performance.now(), timedOut });
    });
  });
}

/**
 * Runs a scenario of test/stress/child.ts in `node --expose-gc --import tsx`; resolves with its result and how
 * long the child took to exit after printing it (it must end by itself).
 */
export async function runScenario<R>(
  name: string,
  options: unknown,
  ms: number,
): Promise<{ result: R; exitMs: number; run: RunResult }> {
  const r = await run(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', childEntry, name, JSON.stringify(options)],
    ms,
  );
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (line === undefined) {
    throw new Error(
      `scenario ${name} gave no result (exit ${r.code}${r.timedOut ? ', killed after the deadline' : ''})\n--- stdout ---\n${r.stdout.slice(-3000)}\n--- stderr ---\n${r.stderr.slice(-3000)}`,
    );
  }
  return { result: JSON.parse(line.slice('RESULT '.length)) as R, exitMs: r.exitedAt - r.lineTimes.get(line)!, run: r };
}
