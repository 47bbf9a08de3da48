// Teams of long-lived workers that the cases borrow: four raw JavaScript Workers (bench/tasks/raw.mjs) and
// four mpthreads Processes (bench/tasks/mp-worker.ts). Booting a worker under tsx costs 0.3-1 s here, so each
// team boots once, on first use, and serves every case of its kind; a case hands the workers their channels
// in a 'setup' message and takes them back with 'teardown'. A case that fails (error reply, timeout, a worker
// that died) retires its team; the next case boots a fresh one.
import { MessageChannel, Worker, type TransferListItem } from 'node:worker_threads';
import { Pipe, Process, type Connection } from '../../lib/index.ts';
import { Mailbox, type Command, type Reply } from '../tasks/control.mjs';
import { benchWorker } from '../tasks/mp-worker.ts';

/**
 * How long a control reply may take before the case fails: a warm-up (a tenth of a repetition) gets
 * kWarmUpTimeoutMs, a timed repetition kRepTimeoutMs. A case whose items never all arrive fails this way.
 */
export const kWarmUpTimeoutMs = 10_000;
export const kRepTimeoutMs = 60_000;

/** The main thread's end of one worker's control channel. */
export interface Endpoint {
  readonly label: string;
  /** Sends a command; Connections and queues inside `role` travel as handles (mpthreads) or via `transfer` (raw). */
  send(msg: Command, transfer?: readonly TransferListItem[]): void;
  /** The next reply; rejects on an error reply, after `timeoutMs`, or when the worker is gone. */
  recv(timeoutMs?: number): Promise<Reply>;
}

export interface Team {
  readonly kind: 'raw' | 'mpthreads';
  readonly members: readonly Endpoint[];
  close(): Promise<void>;
  /** Stops every worker at once (after a failure). */
  kill(): Promise<void>;
}

export const kTeamSize = 4;

function withTimeout<T>(promise: Promise<T>, label: string, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: no reply within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function checkReply(reply: Reply, label: string): Reply {
  if (reply.op === 'error') {
    const error = new Error(`${label}: ${reply.message}`);
    if (reply.stack !== undefined) error.stack = `${error.message}\n  worker stack: ${reply.stack}`;
    throw error;
  }
  return reply;
}

// --- raw ---------------------------------------------------------------------------------------------------

class RawTeam implements Team {
  readonly kind = 'raw';
  readonly members: Endpoint[] = [];
  readonly #workers: Worker[] = [];
  readonly #exits: Promise<number>[] = [];

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const { port1, port2 } = new MessageChannel();
      const worker = new Worker(new URL('../tasks/raw.mjs', import.meta.url), {
        workerData: { ctl: port2 },
        transferList: [port2],
        name: `raw-${i}`,
      });
      const label = `raw worker ${i}`;
      let died: ((error: Error) => void) | undefined;
      const gone = new Promise<never>((_, reject) => {
        died = reject;
      });
      gone.catch(() => {});
      worker.on('error', (error) => died!(new Error(`${label} failed: ${error.message}`)));
      this.#exits.push(
        new Promise((resolve) =>
          worker.once('exit', (code) => {
            died!(new Error(`${label} exited (code ${code})`));
            resolve(code);
          }),
        ),
      );
      const mailbox = new Mailbox(port1);
      this.#workers.push(worker);
      this.members.push({
        label,
        send: (msg, transfer) => mailbox.post(msg, transfer),
        recv: async (ms = kRepTimeoutMs) =>
          checkReply(await withTimeout(Promise.race([mailbox.next() as Promise<Reply>, gone]), label, ms), label),
      });
    }
  }

  async close(): Promise<void> {
    for (const m of this.members) m.send({ op: 'exit' });
    await Promise.all(this.#exits);
  }

  async kill(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}

// --- mpthreads ---------------------------------------------------------------------------------------------

class MpTeam implements Team {
  readonly kind = 'mpthreads';
  readonly members: Endpoint[] = [];
  readonly #processes: Process[] = [];

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const [mine, theirs] = Pipe<Command | Reply>();
      const p = new Process({
        target: benchWorker,
        module: new URL('../tasks/mp-worker.ts', import.meta.url),
        args: [theirs],
        name: `bench-${i}`,
        daemon: true,
      });
      p.start();
      this.#processes.push(p);
      const label = `mpthreads worker ${i}`;
      const conn: Connection<Command | Reply> = mine;
      this.members.push({
        label,
        send: (msg) => conn.send(msg),
        recv: async (ms = kRepTimeoutMs) => {
          try {
            return checkReply((await conn.recv({ timeout: ms })) as Reply, label);
          } catch (error) {
            const e = error as Error;
            if (e.name === 'EOFError') {
              throw new Error(`${label} is gone (exitCode ${p.exitCode}${p.error ? `, ${p.error.message}` : ''})`);
            }
            if (e.name === 'TimeoutError') throw new Error(`${label}: no reply within ${ms / 1000} s`);
            throw new Error(`${label}: ${e.message}`);
          }
        },
      });
    }
  }

  async close(): Promise<void> {
    for (const m of this.members) m.send({ op: 'exit' });
    await Promise.all(this.#processes.map((p) => p.join(10_000)));
    for (const p of this.#processes) if (p.isAlive()) p.terminate();
    await Promise.all(this.#processes.map((p) => p.join()));
  }

  async kill(): Promise<void> {
    for (const p of this.#processes) p.terminate();
    await Promise.all(this.#processes.map((p) => p.join()));
  }
}

// --- the pool of teams -------------------------------------------------------------------------------------

const teams: { raw?: Team; mpthreads?: Team } = {};

/**
 * The team of `kind`, booted on first use. Boot is confirmed by a setup/teardown round with every member,
 * so a case never times the boot.
 */
export async function team(kind: 'raw' | 'mpthreads'): Promise<Team> {
  const existing = teams[kind];
  if (existing !== undefined) return existing;
  const t = kind === 'raw' ? new RawTeam(kTeamSize) : new MpTeam(kTeamSize);
  teams[kind] = t;
  try {
    for (const m of t.members) m.send({ op: 'teardown' });
    for (const m of t.members) await m.recv();
  } catch (error) {
    await retire(kind);
    throw error;
  }
  return t;
}

/** Kills a team after a failure, so the next case starts from fresh workers. */
export async function retire(kind: 'raw' | 'mpthreads'): Promise<void> {
  const t = teams[kind];
  delete teams[kind];
  if (t !== undefined) await t.kill().catch(() => {});
}

/** Ends every team (normal shutdown). */
export async function closeTeams(): Promise<void> {
  for (const kind of ['raw', 'mpthreads'] as const) {
    const t = teams[kind];
    delete teams[kind];
    if (t !== undefined) await t.close().catch(() => t.kill());
  }
}
