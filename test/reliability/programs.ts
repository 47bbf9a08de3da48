// Small whole programs for "nothing keeps the program alive that the user would not expect". Each is written
// to a temporary directory and run with `npx tsx`; each prints `done <Date.now()>` when its main code is over
// (or `throwing` just before it fails on purpose), and the test measures how long the process takes to end.
export interface Program {
  name: string;
  /** Source; LIB is replaced by the library's URL. */
  source: string;
  expectCode: number;
  /** The line after which the program must end. */
  last: 'done' | 'throwing';
  /** Must appear in stdout (or stderr for failures). */
  expectOutput?: RegExp;
}

export const programs: Program[] = [
  {
    name: 'workers-finished-nothing-closed',
    expectCode: 0,
    last: 'done',
    expectOutput: /consumed 1225/,
    source: `
import { Process, Pipe, Queue, JoinableQueue, SimpleQueue, isMainThread, type Connection } from LIB;

export async function producer(q: Queue<number>, jq: JoinableQueue<number>, sq: SimpleQueue<number>, conn: Connection<string>) {
  for (let i = 0; i < 100; i++) { await q.put(i); await jq.put(i); await sq.put(i); }
  conn.send('produced');
}

export async function consumer(q: Queue<number>, conn: Connection<number>) {
  let sum = 0;
  for (let i = 0; i < 50; i++) sum += await q.get();
  conn.send(sum);
}

if (isMainThread) {
  const q = new Queue<number>();
  const jq = new JoinableQueue<number>();
  const sq = new SimpleQueue<number>();
  const bounded = new Queue<number>({ maxsize: 2 });
  const [a, b] = Pipe<string>();
  const [c, d] = Pipe<number>();
  const p1 = new Process({ target: producer, module: import.meta.url, args: [q, jq, sq, b] });
  const p2 = new Process({ target: consumer, module: import.meta.url, args: [q, d] });
  p1.start();
  p2.start();
  await a.recv();
  console.log('consumed', await c.recv());
  await p1.join();
  await p2.join();
  await bounded.put(1);
  await bounded.put(2); // left full
  await jq.get();
  jq.taskDone(); // 99 unfinished left
  console.log('done', Date.now()); // q, jq, sq, bounded, pipes: nothing closed, items left in every queue
}
`,
  },
  {
    name: 'timeouts-aborts-and-closes-leave-nothing-behind',
    expectCode: 0,
    last: 'done',
    expectOutput: /Empty Full AbortError AbortError Empty Full joined ClosedError ClosedError TimeoutError false/,
    source: `
import { Pipe, Queue, JoinableQueue } from LIB;

const q = new Queue<number>();
const full = new Queue<number>({ maxsize: 1 });
await full.put(0);
const out: string[] = [];
const name = (e: unknown) => (e as Error).name;
out.push(await q.get({ timeout: 20 }).then(String, name));
out.push(await full.put(1, { timeout: 20 }).then(String, name));
const ac1 = new AbortController();
const g = q.get({ signal: ac1.signal });
ac1.abort();
out.push(await g.then(String, name));
const ac2 = new AbortController();
const p = full.put(2, { signal: ac2.signal });
ac2.abort();
out.push(await p.then(String, name));
try { q.getNowait(); } catch (e) { out.push(name(e)); }
try { full.putNowait(3); } catch (e) { out.push(name(e)); }
const jq = new JoinableQueue<number>();
await jq.put(1);
await jq.get();
jq.taskDone();
await jq.join();
out.push('joined');
// close() while a put and a get wait on that handle
const closing = new Queue<number>({ maxsize: 1 });
await closing.put(1);
const blockedPut = closing.put(2).then(String, name);
const empty = new Queue<number>();
const blockedGet = empty.get().then(String, name);
closing.close();
empty.close();
out.push(await blockedPut, await blockedGet);
const [a] = Pipe<number>();
out.push(await a.recv({ timeout: 20 }).then(String, name));
out.push(String(await a.poll(20)));
console.log(out.join(' '));
console.log('done', Date.now());
`,
  },
  {
    name: 'queue-created-in-a-worker',
    expectCode: 0,
    last: 'done',
    expectOutput: /got 0,1,2,3,4,5,6,7,8,9/,
    source: `
import { Process, Pipe, Queue, isMainThread, type Connection } from LIB;

export async function owner(conn: Connection<unknown>) {
  const q = new Queue<number>(); // this worker's own hub
  for (let i = 0; i < 10; i++) await q.put(i);
  conn.send(q);
  await conn.recv(); // the parent has taken the items; return without closing anything
}

if (isMainThread) {
  const [a, b] = Pipe<unknown>();
  const p = new Process({ target: owner, module: import.meta.url, args: [b] });
  p.start();
  const q = (await a.recv()) as Queue<number>;
  const got: number[] = [];
  for (let i = 0; i < 10; i++) got.push(await q.get());
  a.send('thanks');
  await p.join();
  console.log('got', got.join(','));
  console.log('done', Date.now());
}
`,
  },
  {
    name: 'daemon-worker-blocked-forever',
    expectCode: 0,
    last: 'done',
    expectOutput: /blocked/,
    source: `
import { Process, Pipe, Queue, isMainThread, type Connection } from LIB;

export async function blockOnQueue(q: Queue<unknown>, conn: Connection<string>) {
  const got = q.get();
  conn.send('blocked');
  await got;
}

if (isMainThread) {
  const q = new Queue<unknown>();
  const [a, b] = Pipe<string>();
  const p = new Process({ target: blockOnQueue, module: import.meta.url, args: [q, b], daemon: true });
  p.start();
  console.log(await a.recv());
  console.log('done', Date.now());
}
`,
  },
  {
    name: 'main-throws-while-workers-block-on-a-queue',
    expectCode: 1,
    last: 'throwing',
    expectOutput: /main failed on purpose/,
    source: `
import { Process, Pipe, Queue, isMainThread, type Connection } from LIB;

export async function blockOnQueue(q: Queue<unknown>, conn: Connection<string>) {
  const got = q.get();
  conn.send('blocked');
  await got;
}

if (isMainThread) {
  const q = new Queue<unknown>();
  const full = new Queue<unknown>({ maxsize: 1 });
  const workers = [0, 1].map(() => {
    const [a, b] = Pipe<string>();
    const p = new Process({ target: blockOnQueue, module: import.meta.url, args: [q, b] });
    p.start();
    return a;
  });
  for (const a of workers) await a.recv();
  await full.put(1);
  void full.put(2); // a blocked put in the main thread too
  console.log('throwing', Date.now());
  throw new Error('main failed on purpose');
}
`,
  },
  {
    name: 'main-rejects-while-workers-block-on-a-queue',
    expectCode: 1,
    last: 'throwing',
    expectOutput: /main rejected on purpose/,
    source: `
import { Process, Pipe, Queue, isMainThread, type Connection } from LIB;

export async function blockOnQueue(q: Queue<unknown>, conn: Connection<string>) {
  const got = q.get();
  conn.send('blocked');
  await got;
}

if (isMainThread) {
  const q = new Queue<unknown>();
  const [a, b] = Pipe<string>();
  const p = new Process({ target: blockOnQueue, module: import.meta.url, args: [q, b] });
  p.start();
  await a.recv();
  const pending = q.get(); // the main thread waits on the queue too
  void pending;
  console.log('throwing', Date.now());
  await Promise.reject(new Error('main rejected on purpose'));
}
`,
  },
];
