// The mpthreads worker: a Process target that plays one role per case, driven by the main thread over a
// control Pipe with the protocol of control.mjs. The data channels (Pipe ends, queues) arrive inside the
// 'setup' message, so a few long-lived Processes serve every case and no case pays for booting workers.
//
// The loops are the plain ones a user writes: `conn.send(x)` / `await conn.recv()` for a Pipe,
// `await q.put(x)` / `await q.get()` for a queue.
//
// Roles (role.kind):
//   pipe-producer    conn.send(item) for items start..start+n-1
//   pipe-consumer    n × await conn.recv(); reports count and checksum
//   queue-producer   await queue.put(item) for its items
//   queue-consumer   n × await queue.get(); with role.counter (mpmc), gets until the consumers together have
//                    taken n items (a shared count), and the one that takes the n-th puts a null for each
//                    other consumer, which stops at it
//   pipe-pinger      n timed round trips of an int over conn, then STOP; pipe-ponger echoes until STOP
//   queue-pinger     the same over two queues (out, back); queue-ponger echoes from out to back
//   fanout           tasks.get() -> results.put(x + 1) -> tasks.taskDone(), until a null task
import type { Connection, JoinableQueue, Queue, SimpleQueue } from '../../lib/index.ts';

/** The queues the cases compare (a SimpleQueue has put and get, no options: the cases pass none to it). */
type AnyQueue<T> = Queue<T> | SimpleQueue<T>;
// Loaded for its side effect: queue handles reach this worker inside control messages, not in its args, and
// the worker runtime registers only the handle kinds found in args (a library limitation; see bench/README.md).
import '../../lib/index.ts';
import { STOP, errorReply, type Command, type Reply } from './control.mjs';
import { checker, isTransfer, maker, roundTripStats, type Payload } from './payloads.mjs';

type Item = unknown;

export type Role =
  | { kind: 'pipe-producer'; conn: Connection<Item>; payload: Payload }
  | { kind: 'pipe-consumer'; conn: Connection<Item>; payload: Payload }
  | { kind: 'queue-producer'; queue: AnyQueue<Item>; payload: Payload }
  | { kind: 'queue-consumer'; queue: AnyQueue<Item>; payload: Payload; counter?: SharedArrayBuffer; consumers?: number }
  | { kind: 'pipe-pinger'; conn: Connection<number> }
  | { kind: 'pipe-ponger'; conn: Connection<number> }
  | { kind: 'queue-pinger'; out: AnyQueue<number>; back: AnyQueue<number> }
  | { kind: 'queue-ponger'; out: AnyQueue<number>; back: AnyQueue<number> }
  | { kind: 'fanout'; tasks: JoinableQueue<number | null>; results: Queue<number> };

type Done = { count: number; checksum: number; stats?: { elapsedMs: number; p50us: number; p99us: number } };

/** The Process target: serves control commands until 'exit' or until the control pipe closes. */
export async function benchWorker(ctl: Connection<Command | Reply>): Promise<void> {
  let role: Role | undefined;
  for (;;) {
    let msg: Command;
    try {
      msg = (await ctl.recv()) as Command;
    } catch {
      return; // the main thread went away
    }
    try {
      switch (msg.op) {
        case 'exit':
          ctl.close();
          return;
        case 'setup':
          role = msg.role as Role;
          ctl.send({ op: 'ready' });
          break;
        case 'teardown':
          if (role !== undefined) close(role);
          role = undefined;
          ctl.send({ op: 'ready' });
          break;
        case 'run': {
          if (role === undefined) throw new Error('run before setup');
          const done = await run(role, msg.n, msg.start, ctl);
          ctl.send({ op: 'done', ...done });
          break;
        }
        default:
          throw new Error(`mpthreads worker: unexpected command ${JSON.stringify(msg)}`);
      }
    } catch (error) {
      ctl.send(errorReply(error));
    }
  }
}

async function go(ctl: Connection<Command | Reply>): Promise<void> {
  const msg = (await ctl.recv()) as Command;
  if (msg.op !== 'go') throw new Error(`expected go, got ${JSON.stringify(msg)}`);
}

async function run(r: Role, n: number, start: number, ctl: Connection<Command | Reply>): Promise<Done> {
  switch (r.kind) {
    case 'pipe-producer': {
      ctl.send({ op: 'ready' });
      await go(ctl);
      const make = maker(r.payload);
      const conn = r.conn;
      if (isTransfer(r.payload)) {
        for (let i = start; i < start + n; i++) {
          const v = make(i) as Uint8Array;
          conn.send(v, { transfer: [v.buffer as ArrayBuffer] });
        }
      } else {
        for (let i = start; i < start + n; i++) conn.send(make(i));
      }
      return { count: n, checksum: 0 };
    }
    case 'pipe-consumer': {
      ctl.send({ op: 'ready' });
      const check = checker(r.payload);
      const conn = r.conn;
      let checksum = 0;
      for (let k = 0; k < n; k++) checksum += check(await conn.recv());
      return { count: n, checksum };
    }
    case 'queue-producer': {
      ctl.send({ op: 'ready' });
      await go(ctl);
      const make = maker(r.payload);
      const q = r.queue;
      if (isTransfer(r.payload)) {
        for (let i = start; i < start + n; i++) {
          const v = make(i) as Uint8Array;
          await (q as Queue<Item>).put(v, { transfer: [v.buffer as ArrayBuffer] });
        }
      } else {
        for (let i = start; i < start + n; i++) await q.put(make(i));
      }
      return { count: n, checksum: 0 };
    }
    case 'queue-consumer': {
      ctl.send({ op: 'ready' });
      const check = checker(r.payload);
      const q = r.queue;
      let checksum = 0;
      let count = 0;
      if (r.counter !== undefined) {
        const taken = new Int32Array(r.counter);
        for (;;) {
          const v = await q.get();
          if (v === null) break;
          checksum += check(v);
          count++;
          if (Atomics.add(taken, 0, 1) + 1 === n) {
            for (let k = 1; k < (r.consumers ?? 1); k++) await q.put(null);
            break;
          }
        }
      } else {
        for (; count < n; count++) checksum += check(await q.get());
      }
      return { count, checksum };
    }
    case 'pipe-pinger':
    case 'queue-pinger': {
      ctl.send({ op: 'ready' });
      await go(ctl);
      const lat = new Float64Array(n);
      let send: (v: number) => unknown, recv: () => Promise<number>;
      if (r.kind === 'pipe-pinger') {
        const conn = r.conn;
        send = (v) => conn.send(v);
        recv = () => conn.recv();
      } else {
        const { out, back } = r;
        send = (v) => out.put(v);
        recv = () => back.get();
      }
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        const a = performance.now();
        await send(i);
        const v = await recv();
        lat[i] = performance.now() - a;
        if (v !== i) throw new Error(`round trip ${i}: got ${v}`);
      }
      const stats = roundTripStats(lat, performance.now() - t0);
      await send(STOP);
      return { count: n, checksum: 0, stats };
    }
    case 'pipe-ponger': {
      ctl.send({ op: 'ready' });
      const conn = r.conn;
      let count = 0;
      for (;;) {
        const v = await conn.recv();
        if (v === STOP) break;
        conn.send(v);
        count++;
      }
      return { count, checksum: 0 };
    }
    case 'queue-ponger': {
      ctl.send({ op: 'ready' });
      const { out, back } = r;
      let count = 0;
      for (;;) {
        const v = await out.get();
        if (v === STOP) break;
        await back.put(v);
        count++;
      }
      return { count, checksum: 0 };
    }
    case 'fanout': {
      ctl.send({ op: 'ready' });
      const { tasks, results } = r;
      let count = 0;
      for (;;) {
        const x = await tasks.get();
        if (x === null) {
          tasks.taskDone();
          break;
        }
        await results.put(x + 1);
        tasks.taskDone();
        count++;
      }
      return { count, checksum: 0 };
    }
    default: {
      const unknown: never = r;
      throw new Error(`mpthreads worker: unknown role ${JSON.stringify(unknown)}`);
    }
  }
}

function close(r: Role): void {
  switch (r.kind) {
    case 'pipe-producer':
    case 'pipe-consumer':
    case 'pipe-pinger':
    case 'pipe-ponger':
      r.conn.close();
      return;
    case 'queue-producer':
    case 'queue-consumer':
      r.queue.close();
      return;
    case 'queue-pinger':
    case 'queue-ponger':
      r.out.close();
      r.back.close();
      return;
    case 'fanout':
      r.tasks.close();
      r.results.close();
      return;
  }
}
