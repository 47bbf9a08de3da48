// The blocking forms of Connection: recvSync, pollSync, recvBytesSync. Same errors as the async forms, falsy
// values, timeouts, EOF however the other end goes (close, return, terminate), the same-thread deadlock they
// refuse, and blocking round trips between workers with nothing lost or woken early.
import * as assert from 'uvu/assert';
import { BufferTooShort, ClosedError, EOFError, Pipe, ProcessError, TimeoutError } from '../lib/index.ts';
import { rejects, startTask, suite, throws } from './_support/harness.ts';
import { runTsProgram } from './_support/run-program.ts';

const tasks = new URL('./fixtures/connection-tasks.ts', import.meta.url);
const t = suite('Connection: blocking receives', 60_000);

const falsy = [0, '', null, undefined, false, Number.NaN, -0, 0n];

t('recvSync returns falsy values as they are, from this thread and from a worker', async () => {
  const [a, b] = Pipe<unknown>();
  for (const value of falsy) {
    a.send(value);
    assert.is(Object.is(b.recvSync({ timeout: 1_000 }), value), true, `${String(value)} from this thread`);
  }
  const p = startTask(tasks, 'sendThen', [b, falsy, 'close']);
  for (const value of falsy) assert.ok(Object.is(a.recvSync({ timeout: 30_000 }), value), String(value));
  throws(() => a.recvSync({ timeout: 30_000 }), EOFError, 'after the last message, EOF');
  await p.join();
  a.close();
});

t('recvSync and pollSync time out; pollSync is true once a message or EOF is there', () => {
  const [a, b] = Pipe<number>();
  let start = performance.now();
  throws(() => b.recvSync({ timeout: 30 }), TimeoutError, 'nothing sent');
  assert.ok(performance.now() - start >= 29);
  assert.is(b.pollSync(), false);
  start = performance.now();
  assert.is(b.pollSync(30), false);
  assert.ok(performance.now() - start >= 29);
  a.send(7);
  assert.is(b.pollSync(), true);
  assert.is(b.pollSync(), true, 'poll does not consume');
  assert.is(b.recvSync(), 7);
  a.close();
  assert.is(b.pollSync(), true, 'EOF is ready too');
  throws(() => b.recvSync(), EOFError);
  b.close();
});

for (const then of ['return', 'spin'] as const) {
  t(`EOF when the other end's worker ${then === 'spin' ? 'is terminated' : 'returns'} without closing`, async () => {
    const [a, b] = Pipe<unknown>();
    const p = startTask(tasks, 'sendThen', [b, [1, 2, 3], then]);
    assert.equal(
      [a.recvSync({ timeout: 30_000 }), a.recvSync({ timeout: 30_000 }), a.recvSync({ timeout: 30_000 })],
      [1, 2, 3],
    );
    if (then === 'spin') p.terminate();
    await p.join();
    throws(() => a.recvSync({ timeout: 30_000 }), EOFError, 'the messages, then EOF');
    a.close();
  });
}

t("EOF when the other end's worker is terminated before it took its args", async () => {
  // The end never reached the worker's code, so no thread ever held it there: the parent put the worker on
  // record as the end's holder when it sent it, and the worker's death ends the blocking receives.
  const [a, b] = Pipe<unknown>();
  const p = startTask(tasks, 'sendThen', [b, [], 'return']);
  p.terminate();
  await p.join();
  assert.is(a.pollSync(30_000), true, 'pollSync sees EOF');
  throws(() => a.recvSync({ timeout: 30_000 }), EOFError);
  a.close();
});

t("EOF while blocked: the other end's worker returns after the receive began waiting", async () => {
  const [a, b] = Pipe<unknown>();
  const p = startTask(tasks, 'returnOnSignal', [b]);
  a.send('go');
  // Its death is on record within ms of its return; the receive must see it, not wait out its 30 s.
  throws(() => a.recvSync({ timeout: 30_000 }), EOFError);
  await p.join();
  a.close();
});

t('a message this thread cannot rebuild takes its place in the order of blocking receives', async () => {
  const [a, b] = Pipe<unknown>();
  const [out, report] = Pipe<string>();
  let deep: unknown = 'leaf';
  for (let i = 0; i < 990; i++) deep = [deep];
  a.send(deep);
  a.send('after1');
  a.send('after2');
  const p = startTask(tasks, 'pollThenRecvSync', [b, report], { resourceLimits: { stackSizeMb: 0.3 } });
  const seen: string[] = [];
  for (;;) {
    try {
      seen.push(await out.recv({ timeout: 30_000 }));
    } catch (error) {
      if (error instanceof EOFError) break;
      throw error;
    }
  }
  await p.join();
  assert.equal(seen, ['pollSync: true', 'recvSync 1: RangeError', 'recvSync 2: after1', 'recvSync 3: after2']);
  a.close();
});

t('a blocking receive waiting forever on an end this thread holds throws ERR_DEADLOCK', () => {
  const [a, b] = Pipe<number>();
  const error = throws(() => b.recvSync(), ProcessError);
  assert.is(error.code, 'ERR_DEADLOCK');
  throws(() => b.recvSync({ timeout: 5 }), TimeoutError, 'with a timeout it waits');
  a.send(1);
  assert.is(b.recvSync(), 1, 'a message sent before is received');
  a.close();
  b.close();
});

t('same errors as the async forms: busy, closed, direction, bad options, bytes', async () => {
  const [a, b] = Pipe<unknown>();
  const pending = b.recv({ timeout: 10_000 });
  assert.is(throws(() => b.recvSync({ timeout: 0 }), ProcessError).code, 'ERR_CONNECTION_BUSY');
  a.send('x');
  assert.is(await pending, 'x');
  throws(() => b.recvSync({ timeout: -1 }), RangeError);
  throws(() => b.recvSync({ signal: new AbortController().signal } as never), TypeError);
  throws(() => b.pollSync(Number.NaN), RangeError);
  a.sendBytes(new Uint8Array([1, 2, 3]));
  const short = throws(() => b.recvBytesSync(2), BufferTooShort);
  assert.equal([...short.data], [1, 2, 3]);
  a.sendBytes(new Uint8Array([4]));
  assert.equal([...b.recvBytesSync()], [4]);
  a.send('not bytes');
  assert.is(throws(() => b.recvBytesSync(), ProcessError).code, 'ERR_NOT_BYTES');
  assert.is(b.recvSync(), 'not bytes', 'it stays for recvSync');
  const [reader, writer] = Pipe<number>(false);
  assert.is(throws(() => writer.recvSync(), ProcessError).code, 'ERR_CONNECTION_WRITE_ONLY');
  reader.close();
  throws(() => reader.recvSync(), ClosedError);
  await rejects(reader.recv(), ClosedError);
  writer.close();
  a.close();
  b.close();
});

t(
  '100,000 blocking round trips between two workers: none lost, none early',
  async () => {
    const [a, b] = Pipe<number>();
    const echo = startTask(tasks, 'echoSync', [b]);
    const ping = startTask(tasks, 'pingSync', [a, 100_000]);
    await Promise.all([ping.join(), echo.join()]);
    assert.is(ping.exitCode, 0, 'every round trip came back right');
    assert.is(echo.exitCode, 0, 'the echo saw EOF after the last');
  },
  120_000,
);

t('the main thread blocks right after starting a TypeScript module compiled for the first time', async () => {
  // The compiled module is delivered by this thread's event loop, which recvSync stops: the worker must not
  // wait for it (it registers tsx itself instead). A module of its own, so no cache has it yet.
  const { code, stdout, stderr } = await runTsProgram(
    (lib) => `
import { Process, Pipe, isMainThread, type Connection } from ${lib};
export function hello(conn: Connection<string>): void {
  conn.send('hello');
}
if (isMainThread) {
  const [a, b] = Pipe<string>();
  const p = new Process({ target: hello, module: import.meta.url, args: [b] });
  p.start();
  console.log(a.recvSync({ timeout: 30_000 }));
  await p.join();
}
`,
  );
  assert.is(code, 0, stderr);
  assert.is(stdout.trim(), 'hello');
});

t('blocking after a child that made no queue has exited: a timeout, not an error about its hub port', async () => {
  // Found by the full suite: the main thread hands children's waiting hub ports to the hub before it blocks,
  // and the port of a child that had exited was closed. A program of its own: no queue may have started the hub.
  const { code, stdout, stderr } = await runTsProgram(
    (lib) => `
import { Pipe, Process, isMainThread } from ${lib};
export function nothing(): void {}
if (isMainThread) {
  const p = new Process({ target: nothing, module: import.meta.url });
  p.start();
  await p.join();
  const [a] = Pipe<number>();
  try {
    a.recvSync({ timeout: 20 });
  } catch (error) {
    console.log((error as Error).name);
  }
}
`,
  );
  assert.is(code, 0, stderr);
  assert.is(stdout.trim(), 'TimeoutError');
});

t.run();
