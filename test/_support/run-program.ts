// Runs a program the way a user would, for tests that check a whole program's exit and output.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { deadline } from './harness.ts';

export interface Ran {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command in its own process group; resolves with its exit code and output. Past `ms` it kills the
 * whole group (npx starts tsx, which starts node: killing only npx would leave the program running and its
 * output pipes open) and rejects.
 */
export function run(
  command: string,
  args: string[],
  options: { cwd: string; ms: number; env?: Record<string, string> },
): Promise<Ran> {
  // No colours (uvu sets FORCE_COLOR) and no inherited loader options: the program runs as a user would run it.
  const env = { ...process.env };
  delete env.FORCE_COLOR;
  delete env.NODE_OPTIONS;
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...env, ...options.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<Ran>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return deadline(exited, options.ms, `${command} ${args.join(' ')}`).catch((error: Error) => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    child.stdout.destroy();
    child.stderr.destroy();
    throw new Error(`${error.message}\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`);
  });
}

const root = fileURLToPath(new URL('../..', import.meta.url));
const libUrl = pathToFileURL(join(root, 'lib', 'index.ts')).href;

/**
 * Writes a fresh TypeScript program (a new file: no compile cache knows it) into a temporary directory and
 * runs it with `npx tsx` from the repository root, as a user would; removes the directory afterwards.
 * `source` gets the URL of lib/index.ts to import.
 */
export async function runTsProgram(source: (lib: string) => string, ms = 60_000): Promise<Ran> {
  const dir = await mkdtemp(join(tmpdir(), 'mpthreads-program-'));
  try {
    const program = join(dir, `program-${process.pid}-${Date.now()}.mts`);
    await writeFile(program, source(JSON.stringify(libUrl)));
    return await run('npx', ['tsx', program], { cwd: root, ms });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
