// Pipe and Connection: CPython's _TestConnection and _TestPoll (Lib/test/_test_multiprocessing.py) ported to
// worker threads, plus what the contract adds: ordering at volume, copy-at-send, handles inside messages and
// args, EOF after a worker exits, and a typed error (never a hang) for every kind of misuse.
//
// Synchronisation is by handshake only: a test that needs a worker to have reached a point waits for a message
// from it. No assertion depends on how long anything takes.
import { fileURLToPath } from 'node:url';
import { runInNewContext } from 'node:vm';
import * as assert from 'uvu/assert';
import {
  BufferTooShort,
  ClosedError,
  Connection,
  EOFError,
  Pipe,
  type Process,
  ProcessError,
  TimeoutError,
} from '../lib/index.ts';
import { rejects, startTask, suite, throws } from './_support/harness.ts';
import { run } from './_support/run-program.ts';

const tasks = new URL('./fixtures/connection-tasks.ts', import.meta.url);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const bytes = (s: string) => encoder.encode(s);
const text = (b: Uint8Array) => decoder.decode(b);

const start = (target: string, args: unknown[], name?: string): Process =>
  startTask(tasks, target, args, name === undefined ? {} : { name });

async function joined(p: Process): Promise<number | null> {
  await p.join();
  return p.exitCode;
}

// ---------------------------------------------------------------------------------------------------------
const cpython = suite('Connection: CPython _TestConnection / _TestPoll');

cpython('test_connection: objects, bytes, recvBytesInto, BufferTooShort, poll, 16 MiB, EOF', async () => {
  const [conn, childConn] = Pipe<unknown>();
  const p = start('echo', [childConn]);
  // test_spawn_close: the end that went to the worker may be "closed" here at once; it is a no-op.
  childConn.close();
  assert.ok(childConn.closed);

  const seq = [1, 2.25, null];
  assert.is(conn.send(seq), undefined);
  assert.equal(await conn.recv(), seq);

  const msg = bytes('hello world');
  const longmsg = bytes('hello world'.repeat(10));
  assert.is(conn.sendBytes(msg), undefined);
  assert.equal(await conn.recvBytes(), msg);

  // recvBytesInto a typed array, at offset 0 and at a byte offset.
  const arr = Int32Array.from([0, 1, 2, 3]);
  let buffer = new Int32Array(10);
  conn.sendBytes(arr);
  assert.is(await conn.recvBytesInto(buffer), arr.length * buffer.BYTES_PER_ELEMENT);
  assert.equal([...buffer], [0, 1, 2, 3, 0, 0, 0, 0, 0, 0]);

  buffer = new Int32Array(10);
  conn.sendBytes(arr);
  assert.is(await conn.recvBytesInto(buffer, 3 * buffer.BYTES_PER_ELEMENT), arr.length * buffer.BYTES_PER_ELEMENT);
  assert.equal([...buffer], [0, 0, 0, 0, 1, 2, 3, 0, 0, 0]);

  // A message longer than the room left rejects with BufferTooShort holding the whole message.
  const room = new Uint8Array(40).fill(0x20);
  conn.sendBytes(longmsg);
  const tooShort = await rejects(conn.recvBytesInto(room), BufferTooShort, 'recvBytesInto(40 bytes)');
  assert.ok(tooShort instanceof ProcessError);
  assert.is(tooShort.code, 'BufferTooShort');
  assert.equal(tooShort.data, longmsg);
  assert.ok(
    room.every((b) => b === 0x20),
    'the buffer is left untouched',
  );
  // Made by hand, as every other error can be (Python's BufferTooShort() takes any arguments).
  assert.equal(new BufferTooShort().data, new Uint8Array(0));
  assert.is(new BufferTooShort().code, 'BufferTooShort');

  // poll: false while nothing is there (immediately and after a wait), true once a message is on its way.
  assert.is(await conn.poll(), false);
  assert.is(await conn.poll(0), false);
  assert.is(await conn.poll(100), false);
  conn.send(null);
  assert.is(await conn.poll(20_000), true);
  assert.is(await conn.poll(0), true, 'poll() does not consume the message');
  assert.is(await conn.recv(), null);

  const reallyBigMsg = new Uint8Array(16 * 1024 * 1024).fill(0x58); // 16 MiB of 'X'
  conn.sendBytes(reallyBigMsg);
  const back = await conn.recvBytes();
  assert.is(back.byteLength, reallyBigMsg.byteLength);
  assert.ok(
    back.every((b) => b === 0x58),
    'the 16 MiB message came back intact',
  );

  conn.sendBytes(new Uint8Array(0)); // tell the child to quit; it closes its end
  assert.is(conn.readable, true);
  assert.is(conn.writable, true);
  await rejects(conn.recv(), EOFError, 'recv() after the child closed');
  await rejects(conn.recvBytes(), EOFError, 'recvBytes() after the child closed');
  assert.is(await joined(p), 0);
});

cpython('test_duplex_false: one-way ends, and misuse is a ProcessError saying read-only/write-only', async () => {
  const [reader, writer] = Pipe<number>(false);
  assert.is(writer.send(1), undefined);
  assert.is(await reader.recv(), 1);
  assert.is(reader.readable, true);
  assert.is(reader.writable, false);
  assert.is(writer.readable, false);
  assert.is(writer.writable, true);

  assert.match(throws(() => reader.send(2), ProcessError, 'reader.send').message, /read-only/);
  assert.match(throws(() => reader.sendBytes(bytes('x')), ProcessError, 'reader.sendBytes').message, /read-only/);
  assert.match((await rejects(writer.recv(), ProcessError, 'writer.recv')).message, /write-only/);
  assert.match((await rejects(writer.poll(), ProcessError, 'writer.poll')).message, /write-only/);
  assert.match((await rejects(writer.recvBytes(), ProcessError, 'writer.recvBytes')).message, /write-only/);
  assert.match(
    (await rejects(writer.recvBytesInto(new Uint8Array(4)), ProcessError, 'writer.recvBytesInto')).message,
    /write-only/,
  );

  // The misuse did not break either end.
  writer.send(3);
  assert.is(await reader.recv(), 3);
  assert.is(await reader.poll(), false, 'the refused send put nothing on the wire');
});

cpython(
  'test_sendbytes: offset and size select a slice; bad ones are RangeError/TypeError and send nothing',
  async () => {
    const msg = bytes('abcdefghijklmnopqrstuvwxyz');
    const [a, b] = Pipe();

    a.sendBytes(msg);
    assert.is(text(await b.recvBytes()), 'abcdefghijklmnopqrstuvwxyz');
    a.sendBytes(msg, 5);
    assert.is(text(await b.recvBytes()), 'fghijklmnopqrstuvwxyz');
    a.sendBytes(msg, 7, 8);
    assert.is(text(await b.recvBytes()), 'hijklmno');
    a.sendBytes(msg, 26);
    assert.is((await b.recvBytes()).byteLength, 0);
    a.sendBytes(msg, 26, 0);
    assert.is((await b.recvBytes()).byteLength, 0);

    // A view into a larger buffer sends only the view's bytes; an ArrayBuffer is accepted as well.
    a.sendBytes(msg.subarray(3, 6));
    assert.is(text(await b.recvBytes()), 'def');
    a.sendBytes(msg.slice(0, 2).buffer);
    assert.is(text(await b.recvBytes()), 'ab');

    for (const [offset, size] of [
      [27, undefined],
      [22, 5],
      [26, 1],
      [-1, undefined],
      [4, -1],
      [1.5, undefined],
      [0, 2.5],
      [NaN, undefined],
    ] as const) {
      const error = throws(() => a.sendBytes(msg, offset, size), RangeError, `sendBytes(msg, ${offset}, ${size})`);
      assert.ok(error.message.length > 0);
    }
    assert.match(throws(() => a.sendBytes(msg, -1), RangeError).message, /offset/);
    assert.match(throws(() => a.sendBytes(msg, 4, -1), RangeError).message, /size/);
    throws(() => a.sendBytes(msg, '1' as unknown as number), TypeError, 'string offset');
    throws(() => a.sendBytes(msg, 0, '1' as unknown as number), TypeError, 'string size');
    throws(() => a.sendBytes('abc' as unknown as Uint8Array), TypeError, 'a string buffer');
    throws(() => a.sendBytes(null as unknown as Uint8Array), TypeError, 'a null buffer');
    assert.is(await b.poll(), false, 'no failed sendBytes put anything on the wire');
  },
);

cpython('recvBytes(maxLength) and recvBytesInto(offset): limits, bad arguments, non-bytes messages', async () => {
  const [a, b] = Pipe<unknown>();
  a.sendBytes(bytes('0123456789'));
  const error = await rejects(b.recvBytes(4), BufferTooShort, 'recvBytes(4)');
  assert.is(text(error.data), '0123456789');
  a.sendBytes(bytes('fits'));
  assert.is(text(await b.recvBytes(4)), 'fits', 'a message of exactly maxLength fits; the long one was consumed');

  a.sendBytes(bytes('keep')); // no argument error below may consume it
  await rejects(b.recvBytes(-1), RangeError, 'recvBytes(-1)');
  await rejects(b.recvBytes(1.5), RangeError, 'recvBytes(1.5)');
  await rejects(b.recvBytes('1' as unknown as number), TypeError, "recvBytes('1')");
  await rejects(b.recvBytesInto('buf' as unknown as Uint8Array), TypeError, "recvBytesInto('buf')");
  await rejects(b.recvBytesInto(new Uint8Array(4), 5), RangeError, 'recvBytesInto(4 bytes, 5)');
  await rejects(b.recvBytesInto(new Uint8Array(4), -1), RangeError, 'recvBytesInto(buf, -1)');
  await rejects(b.recvBytesInto(new Uint8Array(4), '0' as unknown as number), TypeError, "recvBytesInto(buf, '0')");
  assert.is(text(await b.recvBytes()), 'keep');

  // A message that is not bytes is refused by recvBytes and stays for recv().
  a.send({ not: 'bytes' });
  const notBytes = await rejects(b.recvBytes(), ProcessError, 'recvBytes() of an object');
  assert.match(notBytes.message, /recv\(\)/);
  assert.equal(await b.recv(), { not: 'bytes' });
  // ... also for a recv() made at once after it: it gets that message, not the one after (it did: review).
  for (const when of ['sent before', 'sent after'] as const) {
    if (when === 'sent before') a.send('first');
    const refused = b.recvBytes();
    const next = b.recv();
    if (when === 'sent after') a.send('first');
    a.send('second');
    await rejects(refused, ProcessError, `recvBytes(), ${when}`);
    assert.is(await next, 'first', when);
    assert.is(await b.recv(), 'second', when);
  }

  // recvBytesInto at an offset with exactly enough room.
  a.sendBytes(bytes('xy'));
  const into = new Uint8Array(4);
  assert.is(await b.recvBytesInto(into, 2), 2);
  assert.equal([...into], [0, 0, 0x78, 0x79]);
  assert.is(await b.poll(), false);
});

cpython('test_context: [Symbol.dispose]() closes both ends', async () => {
  const [a, b] = Pipe<number>();
  a.send(1729);
  assert.is(await b.recv(), 1729);
  assert.is(a.closed, false);
  assert.is(b.closed, false);
  a[Symbol.dispose]();
  b[Symbol.dispose]();
  assert.is(a.closed, true);
  assert.is(b.closed, true);
  await rejects(a.recv(), ClosedError, 'a.recv() after dispose');
  await rejects(b.recv(), ClosedError, 'b.recv() after dispose');
});

cpython('test_empty_string: an empty bytes message is a real message', async () => {
  const [a, b] = Pipe();
  assert.is(await a.poll(), false);
  b.sendBytes(new Uint8Array(0));
  assert.is(await a.poll(), true);
  assert.is(await a.poll(), true);
  assert.is((await a.recvBytes()).byteLength, 0);
  assert.is(await a.poll(), false);
});

cpython('test_strings: bytes messages from a worker arrive one by one, empty ones included', async () => {
  const strings = ['hello', '', 'a', 'b', '', 'bye', '', 'lop'];
  const [a, b] = Pipe();
  const p = start('sendByteStrings', [b, strings]);
  for (const s of strings) {
    assert.is(await a.poll(20_000), true);
    assert.is(text(await a.recvBytes()), s);
  }
  assert.is(await joined(p), 0);
  await rejects(a.recvBytes(), EOFError, 'recvBytes() after the worker exited');
});

cpython('test_dont_merge: messages are never merged', async () => {
  const [a, b] = Pipe();
  assert.is(await a.poll(0), false);
  assert.is(await a.poll(100), false);
  const p = start('sendByteStrings', [b, ['a', 'b', 'cd']]);
  assert.is(text(await a.recvBytes()), 'a');
  assert.is(await a.poll(20_000), true);
  assert.is(await a.poll(20_000), true);
  assert.is(text(await a.recvBytes()), 'b');
  assert.is(await a.poll(20_000), true);
  assert.is(await a.poll(20_000), true);
  assert.is(await a.poll(0), true);
  assert.is(text(await a.recvBytes()), 'cd');
  assert.is(await joined(p), 0);
});

cpython(
  'test_boundaries: a worker that polls an end pulls whole messages only, and they travel with the end',
  async () => {
    const [r, w] = Pipe(false);
    const [back, childBack] = Pipe<{ ready: boolean; reader: Connection<unknown> }>();
    const p = start('pollThenHandBack', [r, childBack]);
    const sent = ['first', '', 'second'];
    for (const s of sent) w.sendBytes(bytes(s));
    const { ready, reader } = await back.recv();
    assert.is(ready, true);
    assert.ok(reader instanceof Connection);
    assert.is(reader.readable, true);
    assert.is(reader.writable, false);
    w.close();
    const got: string[] = [];
    for (;;) {
      try {
        got.push(text(await reader.recvBytes()));
      } catch (error) {
        assert.instance(error, EOFError);
        break;
      }
    }
    assert.equal(got, sent);
    assert.is(await joined(p), 0);
  },
);

cpython.run();

// ---------------------------------------------------------------------------------------------------------
const order = suite('Connection: order, copies, handles inside values');

order('10,000 messages each way across threads arrive in order', async () => {
  const n = 10_000;
  const [a, b] = Pipe<unknown>();
  const p = start('countBothWays', [b, n]);
  let inOrder = 0;
  for (let i = 0; i < n; i++) {
    if ((await a.recv()) === i) inOrder++;
  }
  assert.is(inOrder, n);
  for (let i = 0; i < n; i++) a.send(i);
  assert.equal(await a.recv(), { received: n, inOrder: n });
  assert.is(await joined(p), 0);
});

order('concurrent recv() calls settle in call order', async () => {
  const [a, b] = Pipe<number>();
  const pending = [b.recv(), b.recv(), b.recv()];
  a.send(1);
  a.send(2);
  a.send(3);
  assert.equal(await Promise.all(pending), [1, 2, 3]);
  // A recv() made while an earlier one waits queues behind it even if a message is already there.
  const first = b.recv();
  a.send(4);
  a.send(5);
  const second = b.recv();
  assert.equal(await Promise.all([first, second]), [4, 5]);
});

// Found (issue 10, item 6): send() read getters twice, kept a key a getter deleted, picked up keys getters added,
// and gave a TypeError for a revoked Proxy. wire.test holds the queue's encoder to the same; this is send()'s copy.
order(
  'send() reads each property once, as structuredClone does (getters, deletions, truncations, additions)',
  async () => {
    const [a, b] = Pipe<unknown>();
    let reads = 0;
    a.send({
      get counted() {
        reads++;
        return reads;
      },
      beside: [new Date(0), new Map([[1, 2]]), new Uint8Array(2)],
    });
    assert.is(((await b.recv()) as { counted: number }).counted, 1);
    assert.is(reads, 1, 'the getter is read once');

    let calls = 0;
    a.send({
      get once() {
        if (calls++ > 0) throw new Error('read twice');
        return 'ok';
      },
    });
    assert.equal(await b.recv(), { once: 'ok' }, 'a getter that throws on its second read');

    // Each case made afresh for structuredClone and for send(): the getters change the object they belong to.
    const deleting = (): Record<string, unknown> => {
      const object: Record<string, unknown> = {
        get a() {
          delete object.b;
          return 1;
        },
        b: 2,
      };
      return object;
    };
    const adding = (): Record<string, unknown> => {
      const object: Record<string, unknown> = {
        get a() {
          object.z = 9;
          return 1;
        },
      };
      return object;
    };
    const truncating = (): unknown[] => {
      const list: unknown[] = [1, 2, 3];
      Object.defineProperty(list, 0, {
        get() {
          list.length = 1;
          return 'first';
        },
        enumerable: true,
        configurable: true,
      });
      return list;
    };
    for (const [what, make, expected] of [
      ['a key a getter deletes', deleting, { a: 1 }],
      ['a key a getter adds', adding, { a: 1 }],
      ['an array a getter truncates', truncating, ['first', , ,]],
    ] as const) {
      assert.equal(structuredClone(make()), expected, `${what}: structuredClone`);
      a.send(make());
      const got = await b.recv();
      assert.equal(got, expected, what);
      assert.equal(Object.keys(got as object), Object.keys(expected), `${what}: the keys`);
    }

    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const error = throws(() => a.send(proxy), DOMException, 'a revoked Proxy');
    assert.is(error.name, 'DataCloneError');
    a.send('still usable');
    assert.is(await b.recv(), 'still usable');
    a.close();
    b.close();
  },
);

order('send() copies at the call: later mutation does not change what arrives', async () => {
  const [a, b] = Pipe<unknown>();
  const obj = { list: [1, 2], nested: { n: 1 } };
  const typed = new Uint8Array([1, 2, 3]);
  a.send(obj);
  a.send(typed);
  a.sendBytes(typed);
  obj.list.push(3);
  obj.nested.n = 2;
  typed.fill(9);
  assert.equal(await b.recv(), { list: [1, 2], nested: { n: 1 } });
  assert.equal([...((await b.recv()) as Uint8Array)], [1, 2, 3]);
  assert.equal([...(await b.recvBytes())], [1, 2, 3]);

  // The same holds when the value carries a Connection (the marshalling path).
  const [c, d] = Pipe<string>();
  const carrier = { conn: d, data: [1] };
  a.send(carrier);
  carrier.data.push(2);
  const arrived = (await b.recv()) as { conn: Connection<string>; data: number[] };
  assert.equal(arrived.data, [1]);
  c.send('still connected');
  assert.is(await arrived.conn.recv(), 'still connected');
});

order('Connections nested in args (arrays, plain objects) arrive working; the sender ends are detached', async () => {
  const [r1, w1] = Pipe<string>(false);
  const [r2, w2] = Pipe<string>(false);
  const [r3, w3] = Pipe<string>(false);
  const p = start('useNestedArgs', [{ list: [w1, 'one'], deep: { inner: { conn: w2 } } }, [w3, w1]], 'nested-args');
  for (const w of [w1, w2, w3]) {
    assert.is(w.closed, true);
    const error = throws(() => w.send('x'), ClosedError, 'send on a detached end');
    assert.is(error.code, 'ClosedError');
    assert.match(error.message, /nested-args/, 'the error names the process the end went to');
    w.close(); // a no-op on a detached end
  }
  assert.is(await r1.recv(), 'list one');
  assert.is(await r2.recv(), 'deep');
  assert.is(await r3.recv(), 'array same', 'an end that appears twice in args arrives as one object');
  assert.is(await joined(p), 0);
  for (const r of [r1, r2, r3]) await rejects(r.recv(), EOFError, 'recv() after the worker exited');
});

order('a Connection sent through another Connection arrives working in a worker', async () => {
  const [control, childControl] = Pipe<unknown>();
  const p = start('useReceivedConnection', [childControl]);
  const [mine, theirs] = Pipe<string>();
  control.send(theirs);
  const detached = throws(() => theirs.send('x'), ClosedError, 'send on the end that was sent');
  assert.match(detached.message, /another thread/);
  await rejects(theirs.recv(), ClosedError, 'recv on the end that was sent');
  theirs.close();
  assert.is(await mine.recv(), 'hello through a sent connection');
  mine.send('pong');
  assert.is(await control.recv(), 'worker got pong');
  assert.is(await joined(p), 0);
  await rejects(mine.recv(), EOFError, 'the received end closed when its worker exited');
});

order('an end that appears twice in one message arrives as one object', async () => {
  const [a, b] = Pipe<unknown>();
  const [c, d] = Pipe<number>();
  a.send([d, { again: d }]);
  const [x, { again: y }] = (await b.recv()) as [Connection<number>, { again: Connection<number> }];
  assert.ok(x === y, 'one Connection, not two sharing a port');
  c.send(1);
  assert.is(await y.recv(), 1);
  x.close();
  assert.is(y.closed, true);
  await rejects(c.recv(), EOFError, 'the peer sees EOF once the one end is closed');
});

order('an end sent within a thread keeps its unreceived messages, in order, including ones poll() pulled', async () => {
  const [a, b] = Pipe<unknown>();
  const [c, d] = Pipe<number>();
  c.send(1);
  c.send(2);
  assert.is(await d.poll(), true); // pulls 1 off the port
  c.send(3);
  a.send({ end: d });
  const { end } = (await b.recv()) as { end: Connection<number> };
  assert.is(d.closed, true);
  assert.is(await end.recv(), 1);
  assert.is(await end.recv(), 2);
  assert.is(await end.recv(), 3);
  c.send(4);
  c.close();
  assert.is(await end.recv(), 4);
  await rejects(end.recv(), EOFError, 'recv() after the peer closed');
});

order('an end whose peer already closed travels and still delivers what was sent, then EOF', async () => {
  const [a, b] = Pipe<unknown>();
  const [c, d] = Pipe<string>();
  c.send('last words');
  c.close();
  assert.is(await d.poll(20_000), true);
  a.send([d]);
  const [end] = (await b.recv()) as [Connection<string>];
  assert.is(await end.recv(), 'last words');
  await rejects(end.recv(), EOFError, 'recv() at EOF');
  assert.is(await end.poll(), true, 'poll() is true at EOF');
});

order('sending a Connection through its own other end is refused, and both ends keep working', async () => {
  const [a, b] = Pipe<unknown>();
  a.send('before');
  throws(() => a.send(a), Error, 'a.send(a)');
  const loop = throws(() => a.send({ inside: [b] }), ProcessError, 'a.send(b)');
  assert.match(loop.message, /other end/);
  assert.is(a.closed, false);
  assert.is(b.closed, false);
  a.send('after');
  assert.is(await b.recv(), 'before');
  assert.is(await b.recv(), 'after');
  b.send('back');
  assert.is(await a.recv(), 'back');
});

order('an end with a recv() waiting on it cannot be sent; the waiting recv() still gets its message', async () => {
  const [a, b] = Pipe<unknown>();
  const [c, d] = Pipe<string>();
  const waiting = d.recv();
  const busy = throws(() => a.send(d), ProcessError, 'sending a busy end');
  assert.is(busy.code, 'ERR_CONNECTION_BUSY');
  assert.is(d.closed, false);
  c.send('for the waiter');
  assert.is(await waiting, 'for the waiter');
  assert.is(await b.poll(), false, 'nothing was sent');
});

order.run();

// ---------------------------------------------------------------------------------------------------------
const eof = suite('Connection: EOF and close');

eof('poll() is true at EOF at once: right after the peer closed, and once the last message is taken', async () => {
  // The port's 'close' event comes only while someone listens, and a poll() that finds nothing does not
  // listen: it reads the other end's record in shared memory instead.
  const [a, b] = Pipe();
  a.close();
  assert.is(await b.poll(), true, 'right after the peer closed');
  await rejects(b.recv(), EOFError, 'recv() at EOF');
  const [c, d] = Pipe();
  c.send(1);
  c.close();
  assert.is(await d.poll(), true, 'a message is there');
  assert.is(await d.recv(), 1);
  assert.is(await d.poll(), true, 'taken the last message: EOF');
  await rejects(d.recv(), EOFError, 'recv() at EOF');
});

eof('an end whose peer closed before the end was sent to a worker: there, the messages, then EOF', async () => {
  // The port's 'close' does not come in the receiving thread then: EOF is read from the other end's record.
  for (const sent of [[1, 2], []]) {
    const [a, b] = Pipe();
    for (const m of sent) a.send(m);
    a.close();
    const [report, childReport] = Pipe();
    const p = start('collectUntilEof', [b, childReport]);
    assert.equal(await report.recv({ timeout: 20_000 }), sent);
    assert.is(await joined(p), 0);
  }
});

eof('EOF after the peer worker exits comes only after every earlier message', async () => {
  const [a, b] = Pipe<number>();
  const p = start('sendRange', [b, 100]);
  assert.is(await joined(p), 0); // the worker is gone before we read anything
  assert.is(await a.poll(), true);
  for (let i = 0; i < 100; i++) assert.is(await a.recv(), i);
  assert.is(await a.poll(), true, 'taken the last message: poll() sees EOF');
  await rejects(a.recv(), EOFError, 'recv() after the last message');
  await rejects(a.recv(), EOFError, 'recv() again: EOF is final');
  assert.is(await a.poll(), true, 'poll() is true at EOF');
  assert.is(a.closed, false, 'EOF does not close this end');
});

eof('EOF after process.exit(n) in the worker, also only after every earlier message', async () => {
  const [a, b] = Pipe<number>();
  const p = start('sendRangeThenExit', [b, 50, 7]);
  const got: number[] = [];
  for await (const m of a) got.push(m);
  assert.equal(
    got,
    Array.from({ length: 50 }, (_, i) => i),
  );
  assert.is(await joined(p), 7);
});

eof('for await ends at EOF, in this thread and in a worker', async () => {
  const [a, b] = Pipe<number>();
  a.send(1);
  a.send(2);
  a.send(3);
  a.close();
  const got: number[] = [];
  for await (const m of b) got.push(m);
  assert.equal(got, [1, 2, 3]);

  const [toChild, childIn] = Pipe<unknown>(); // the worker's input
  const [report, childReport] = Pipe<unknown>(false);
  const p = start('collectUntilEof', [childIn, childReport]);
  toChild.send('x');
  toChild.send({ y: 1 });
  toChild.sendBytes(new Uint8Array(0));
  toChild.close();
  const seen = (await report.recv()) as unknown[];
  assert.is(seen.length, 3);
  assert.equal(seen.slice(0, 2), ['x', { y: 1 }]);
  assert.is((seen[2] as Uint8Array).byteLength, 0);
  assert.is(await joined(p), 0);
});

eof('an end whose peer closed before the worker started delivers everything to the worker, then EOF', async () => {
  const [toChild, childIn] = Pipe<unknown>();
  const [report, childReport] = Pipe<unknown>(false);
  toChild.send('one');
  toChild.send('two');
  toChild.close();
  const p = start('collectUntilEof', [childIn, childReport]);
  assert.equal(await report.recv(), ['one', 'two']);
  assert.is(await joined(p), 0);
});

eof('close() rejects a waiting recv()/poll() with ClosedError; the peer sees EOF; close is idempotent', async () => {
  const [a, b] = Pipe<number>();
  const waitingRecv = a.recv();
  const waitingPoll = a.poll(60_000);
  const peerWaiting = b.recv();
  a.close();
  a.close();
  assert.is(a.closed, true);
  await rejects(waitingRecv, ClosedError, 'the recv() waiting at close()');
  await rejects(waitingPoll, ClosedError, 'the poll() waiting at close()');
  await rejects(peerWaiting, EOFError, "the peer's waiting recv()");
  assert.is(await b.poll(), true);
});

eof('use after close is a ClosedError for every operation', async () => {
  const [a, b] = Pipe<number>();
  a.close();
  for (const [what, fn] of [
    ['send', () => a.send(1)],
    ['sendBytes', () => a.sendBytes(new Uint8Array(1))],
  ] as const) {
    assert.is(throws(fn, ClosedError, what).code, 'ClosedError');
  }
  await rejects(a.recv(), ClosedError, 'recv');
  await rejects(a.poll(), ClosedError, 'poll');
  await rejects(a.recvBytes(), ClosedError, 'recvBytes');
  await rejects(a.recvBytesInto(new Uint8Array(1)), ClosedError, 'recvBytesInto');
  await rejects(b.recv(), EOFError, 'the other end');
});

// Found: an end dropped without close() was never collected (its port's listeners held it, about 6.4 KB a
// pair for good), and its peer never saw EOF. Python closes a Connection when it is deleted; here, when it is
// collected.
eof(
  'an end dropped without close() is collected: the other end then sees EOF, and dropped pairs leave memory flat',
  async () => {
    const program = `
    import { Pipe } from ${JSON.stringify(new URL('../lib/index.ts', import.meta.url).href)};
    const settle = async () => { for (let i = 0; i < 4; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); } };
    const memory = () => { const m = process.memoryUsage(); return m.heapUsed + m.external; };
    const outcome = async (receive) => { try { return await receive(); } catch (e) { return e.code; } };
    let [a, b] = Pipe();
    a.send('sent before');
    a = undefined;
    await settle();
    const eof = [await outcome(() => b.recv()), await outcome(() => b.recv({ timeout: 10_000 }))];
    let [c, d] = Pipe();
    c.send('sent before');
    c = undefined;
    await settle();
    const eofSync = [await outcome(() => d.recvSync()), await outcome(() => d.recvSync({ timeout: 10_000 }))];
    const round = async () => {
      for (let i = 0; i < 1000; i++) {
        const [x, y] = Pipe();
        x.send({ i, text: 'x'.repeat(100) });
        await y.recv();
      }
    };
    await round();
    await settle();
    const before = memory();
    for (let r = 0; r < 4; r++) await round();
    await settle();
    console.log(JSON.stringify({ eof, eofSync, perPair: (memory() - before) / 4000 }));`;
    const ran = await run(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', program], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      ms: 60_000,
    });
    assert.is(ran.code, 0, ran.stderr);
    const { eof, eofSync, perPair } = JSON.parse(ran.stdout.trim()) as {
      eof: unknown[];
      eofSync: unknown[];
      perPair: number;
    };
    assert.equal(eof, ['sent before', 'EOFError'], 'recv()');
    assert.equal(eofSync, ['sent before', 'EOFError'], 'recvSync()');
    assert.ok(perPair < 1024, `each dropped pair kept ${perPair.toFixed(0)} B`);
  },
);

eof.run();

// ---------------------------------------------------------------------------------------------------------
const misuse = suite('Connection: bad input is a typed error, never a hang');

misuse(
  'a function or symbol makes send() throw DataCloneError; nothing is half-sent and the end stays usable',
  async () => {
    const [a, b] = Pipe<unknown>();
    const [c, d] = Pipe<string>();
    for (const bad of [() => 1, Symbol('s'), { nested: { fn() {} } }, [1, Symbol('t')], { conn: d, fn: () => 2 }]) {
      const error = throws(() => a.send(bad), DOMException, `send(${String(typeof bad)})`);
      assert.is(error.name, 'DataCloneError');
    }
    assert.is(await b.poll(), false, 'nothing arrived from the failed sends');
    assert.is(d.closed, false, 'a Connection inside a value that failed to send was not moved');
    c.send('d still works');
    assert.is(await d.recv(), 'd still works');
    a.send('next');
    assert.is(await b.recv(), 'next');
  },
);

misuse('negative or NaN timeouts are RangeError, non-numbers TypeError, naming the option and the value', async () => {
  const [a, b] = Pipe<number>();
  for (const bad of [-1, -Infinity, NaN]) {
    const e = await rejects(a.recv({ timeout: bad }), RangeError, `recv({ timeout: ${bad} })`);
    assert.match(e.message, /timeout/);
    assert.ok(e.message.includes(String(bad)), e.message);
    const p = await rejects(a.poll(bad), RangeError, `poll(${bad})`);
    assert.match(p.message, /timeout/);
    assert.ok(p.message.includes(String(bad)), p.message);
  }
  for (const bad of ['10', null, {}, 10n]) {
    const e = await rejects(
      a.recv({ timeout: bad as unknown as number }),
      TypeError,
      `recv({ timeout: ${String(bad)} })`,
    );
    assert.match(e.message, /timeout/);
    await rejects(a.poll(bad as unknown as number), TypeError, `poll(${String(bad)})`);
  }
  await rejects(a.recv({ signal: 'abort' as unknown as AbortSignal }), TypeError, 'recv({ signal: string })');
  await rejects(a.recv('soon' as never), TypeError, "recv('soon')");
  throws(() => a.send(1, { transfer: 'x' as never }), TypeError, "send(1, { transfer: 'x' })");
  // What the list holds is checked too: the platform's own error named neither the option nor the value.
  for (const [bad, shown] of [
    [5, /options\.transfer\[0\] must be .* got 5/],
    [new Uint8Array(4), /options\.transfer\[0\] .*Uint8Array.*\.buffer/],
    [{}, /options\.transfer\[0\] must be/],
  ] as const)
    assert.match(
      throws(() => a.send(1, { transfer: [bad as never] }), TypeError, `transfer [${String(bad)}]`).message,
      shown,
    );
  // An ArrayBuffer from another realm (a vm context) moves as the platform moves it: not refused by the check.
  const foreign = runInNewContext('new ArrayBuffer(8)') as ArrayBuffer;
  b.send(foreign as never, { transfer: [foreign] });
  assert.is(foreign.byteLength, 0, 'moved');
  assert.is(((await a.recv()) as unknown as ArrayBuffer).byteLength, 8);
  throws(() => Pipe('yes' as unknown as boolean), TypeError, "Pipe('yes')");
  assert.is(await a.poll(), false, 'nothing was consumed or closed');
  b.send(1);
  assert.is(await a.recv(), 1, 'the end is still usable');
});

misuse('recv() with a timeout rejects with TimeoutError; a later message is not lost', async () => {
  const [a, b] = Pipe<string>();
  const e = await rejects(b.recv({ timeout: 10 }), TimeoutError, 'recv({ timeout: 10 })');
  assert.ok(e instanceof ProcessError);
  assert.is(e.code, 'TimeoutError');
  await rejects(b.recv({ timeout: 0 }), TimeoutError, 'recv({ timeout: 0 }) with nothing there');
  a.send('late');
  assert.is(await b.recv({ timeout: 0 }), 'late', 'a message already there settles even a zero timeout');
  a.send('later');
  assert.is(await b.recv({ timeout: 60_000 }), 'later');
});

misuse('recv() with an AbortSignal rejects with the abort reason; a later message is not lost', async () => {
  const [a, b] = Pipe<string>();
  const controller = new AbortController();
  const reason = new Error('stop waiting');
  const waiting = b.recv({ signal: controller.signal });
  controller.abort(reason);
  try {
    await waiting;
    assert.unreachable('recv() should have rejected');
  } catch (error) {
    assert.is(error, reason);
  }
  const already = AbortSignal.abort('gone');
  try {
    await b.recv({ signal: already });
    assert.unreachable('recv() should have rejected');
  } catch (error) {
    assert.is(error, 'gone');
  }
  a.send('after abort');
  assert.is(await b.recv(), 'after abort');
  // Already aborted: rejects even when a message waits (which stays for the next recv()) or at EOF.
  a.send('kept');
  try {
    await b.recv({ signal: already });
    assert.unreachable('recv() with a message waiting should have rejected');
  } catch (error) {
    assert.is(error, 'gone');
  }
  assert.is(await b.recv(), 'kept');
  a.close();
  try {
    await b.recv({ signal: already });
    assert.unreachable('recv() at EOF should have rejected');
  } catch (error) {
    assert.is(error, 'gone');
  }
  await rejects(b.recv(), EOFError, 'recv() at EOF');
});

misuse.run();
