// The main-thread side of the agents in test/fixtures/reliability-tasks.ts: long-lived workers that run
// commands (produce, consume, relay, ...) so that a test can run many trials without starting a process each.
import { Pipe, Process, type Connection } from '../../lib/index.ts';
import type { Command, Reply } from '../fixtures/reliability-tasks.ts';
import { deadline } from '../_support/harness.ts';
import type { TicketClock } from './history.ts';

export const tasks = new URL('../fixtures/reliability-tasks.ts', import.meta.url);

type WithoutId<C> = C extends unknown ? Omit<C, 'id'> : never;
export type AgentCommand = WithoutId<Exclude<Command, { op: 'exit' }>>;

export class AgentError extends Error {
  override name = 'AgentError';
}

export class Agent {
  readonly index: number;
  readonly process: Process;
  readonly #conn: Connection<Command | Reply>;
  readonly #pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: unknown) => void }>();
  #nextId = 1;
  #ended = false;
  readonly ready: Promise<void>;

  private constructor(index: number, process: Process, conn: Connection<Command | Reply>) {
    this.index = index;
    this.process = process;
    this.#conn = conn;
    let readyResolve!: () => void;
    let readyReject!: (e: unknown) => void;
    this.ready = new Promise((resolve, reject) => {
      readyResolve = resolve;
      readyReject = reject;
    });
    this.#pending.set(0, { resolve: () => readyResolve(), reject: readyReject });
    void this.#read();
  }

  /** Starts `count` agents (numbered first..first+count-1) and waits until each is ready. */
  static async start(
    count: number,
    clock: TicketClock,
    register: (p: Process) => Process = (p) => p,
    first = 1,
  ): Promise<Agent[]> {
    const agents: Agent[] = [];
    for (let i = 0; i < count; i++) {
      const [mine, theirs] = Pipe<Command | Reply>();
      const index = first + i;
      const p = register(
        new Process({ target: 'agent', module: tasks, args: [theirs, clock.buffer], name: `agent-${index}` }),
      );
      p.start();
      agents.push(new Agent(index, p, mine));
    }
    await deadline(Promise.all(agents.map((a) => a.ready)), 60_000, `starting ${count} agents`);
    return agents;
  }

  /** Runs a command in the agent; resolves with its reply, rejects with what the command threw there. */
  call(cmd: AgentCommand): Promise<Reply> {
    if (this.#ended)
      return Promise.reject(new AgentError(`agent-${this.index} has ended (exit code ${this.process.exitCode})`));
    const id = this.#nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      try {
        this.#conn.send({ ...cmd, id } as Command);
      } catch (error) {
        this.#pending.delete(id);
        reject(error);
      }
    }).then((reply) => {
      if (reply.error !== undefined) {
        const e = new AgentError(`agent-${this.index} ${cmd.op}: ${reply.error.name}: ${reply.error.message}`);
        if (reply.error.stack !== undefined) e.stack = `${e.message}\n--- in the agent ---\n${reply.error.stack}`;
        throw e;
      }
      return reply;
    });
  }

  /** Asks the agent to exit and waits for it; terminates it if it does not exit within `ms`. */
  async stop(ms = 10_000): Promise<void> {
    if (!this.#ended && this.process.isAlive()) {
      try {
        this.#conn.send({ op: 'exit', id: -1 });
      } catch {
        /* already gone */
      }
    }
    await this.process.join(ms);
    if (this.process.isAlive()) {
      this.process.terminate();
      await this.process.join();
    }
    this.#conn.close();
  }

  async #read(): Promise<void> {
    try {
      for await (const message of this.#conn) {
        const reply = message as Reply;
        const waiter = this.#pending.get(reply.id);
        this.#pending.delete(reply.id);
        waiter?.resolve(reply);
      }
    } catch {
      // closed by stop()
    }
    this.#ended = true;
    const error = new AgentError(
      `agent-${this.index} ended (exit code ${this.process.exitCode}) with commands pending`,
    );
    for (const waiter of this.#pending.values()) waiter.reject(error);
    this.#pending.clear();
  }
}

export async function stopAll(agents: Agent[] | undefined): Promise<void> {
  if (agents === undefined) return;
  await Promise.all(agents.map((a) => a.stop()));
}

/** Resolves after `turns` turns of the event loop: spreads a kill over moments, it synchronises nothing. */
export async function yieldTurns(turns: number): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** A small seeded PRNG (mulberry32), so a failing trial can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
