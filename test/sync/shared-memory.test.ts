// Value, RawValue, SharedArray, RawArray: CPython's _TestValue and _TestArray ported (a worker writes, this
// thread reads the same memory), then typecodes, bad input, and the memory shared through pipes and queues.
import { inspect } from 'node:util';
import * as assert from 'uvu/assert';
import { Lock, Pipe, Queue, RawArray, RawValue, RLock, SharedArray, Value } from '../../lib/index.ts';
import { openQueues, startTask, suite, throws } from '../_support/harness.ts';

const tasks = new URL('../fixtures/sync-tasks.ts', import.meta.url);
const t = suite('sync: CPython _TestValue, _TestArray');
const { open } = openQueues(t);

const codesValues = [
  ['i', 4343, 24234],
  ['d', 3.625, -4.25],
  ['h', -232, 234],
  ['q', 2n ** 33n, 2n ** 34n],
  ['B', 120, 121],
] as const;

for (const raw of [false, true]) {
  t(`test_${raw ? 'rawvalue' : 'value'}: a worker's writes are read here`, async () => {
    const values = codesValues.map(([code, value]) =>
      raw ? RawValue(code, value as never) : Value(code, value as never),
    );
    for (const [i, v] of values.entries()) assert.is(v.value, codesValues[i]![1]);
    const p = startTask(tasks, 'setValues', [values, codesValues.map((c) => c[2])]);
    await p.join();
    assert.is(p.exitCode, 0);
    for (const [i, v] of values.entries()) assert.is(v.value, codesValues[i]![2]);
  });
}

t('test_getobj_getlock: the default lock, a given lock, lock false makes a RawValue', () => {
  const val1 = Value('i', 5);
  assert.ok(val1.getLock() instanceof RLock);
  assert.ok(val1.getObj() instanceof Int32Array);
  assert.is(val1.getObj()[0], 5);
  const val2 = Value('i', 5, { lock: null });
  assert.ok(val2.getLock() instanceof RLock);
  const lock = new Lock();
  const val3 = Value('i', 5, { lock });
  assert.is(val3.getLock(), lock);
  const val4 = Value('i', 5, { lock: false });
  assert.not.ok('getLock' in val4);
  assert.not.ok('getObj' in val4);
  assert.ok(val4 instanceof RawValue);
  throws(() => Value('i', 5, { lock: 'navalue' as never }), TypeError);
  const val5 = new RawValue('i', 5);
  assert.not.ok('getLock' in val5);
  assert.ok(val1 instanceof Value);
});

t("a Value and a SharedArray take their lock themselves, as Python's synchronized wrappers do", async () => {
  // Python: counter.acquire(); counter.release(); with counter: ... (review: only getLock() was there).
  for (const shared of [Value('i', 0), SharedArray('i', 3)]) {
    const lock = shared.getLock();
    assert.is(shared.acquireSync(), true);
    assert.is(lock.locked(), true);
    shared.release();
    assert.is(lock.locked(), false);
    assert.is(await shared.acquire({ timeout: 1_000 }), true);
    {
      using _ = shared;
      assert.is(lock.locked(), true);
    }
    assert.is(lock.locked(), false, 'released at the end of the block');
  }
});

for (const raw of [false, true]) {
  t(`test_${raw ? 'rawarray' : 'array'}: indexing, slices, and a worker's running sums read here`, async () => {
    const seq = [680, 626, 934, 821, 150, 233, 548, 982, 714, 831];
    const arr = raw ? RawArray('i', seq) : SharedArray('i', seq);
    assert.is(arr.length, seq.length);
    assert.is(arr[3], seq[3]);
    assert.equal([...arr.slice(2, 7)], seq.slice(2, 7));
    arr.set([1, 2, 3, 4], 4);
    seq.splice(4, 4, 1, 2, 3, 4);
    assert.equal([...arr], seq);
    for (let i = 1; i < seq.length; i++) seq[i]! += seq[i - 1]!;
    const p = startTask(tasks, raw ? 'runningSumsRaw' : 'runningSums', [arr]);
    await p.join();
    assert.is(p.exitCode, 0);
    assert.equal([...arr], seq);
  });
}

t('test_array_from_size: zeroed, then filled', () => {
  for (let round = 0; round < 3; round++) {
    const arr = SharedArray('i', 10);
    assert.is(arr.length, 10);
    assert.equal([...arr], Array(10).fill(0));
    arr.set(Array.from({ length: 10 }, (_, i) => i));
    assert.equal([...arr], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  }
});

t('test_getobj_getlock_obj: arrays as values are; lock false and RawArray are plain typed arrays', () => {
  const arr1 = SharedArray('i', [0, 1, 2]);
  assert.ok(arr1.getLock() instanceof RLock);
  assert.ok(arr1.getObj() instanceof Int32Array);
  assert.ok(arr1 instanceof SharedArray);
  assert.ok(arr1 instanceof Int32Array);
  const lock = new Lock();
  assert.is(SharedArray('i', [1], { lock }).getLock(), lock);
  const arr4 = SharedArray('i', [1, 2], { lock: false });
  assert.not.ok('getLock' in arr4);
  assert.ok(arr4.buffer instanceof SharedArrayBuffer);
  throws(() => SharedArray('i', [1], { lock: 'notalock' as never }), TypeError);
  const arr5 = RawArray('d', 3);
  assert.ok(arr5 instanceof Float64Array);
  assert.ok(arr5.buffer instanceof SharedArrayBuffer);
  assert.not.ok(arr5 instanceof SharedArray);
  assert.ok(!(arr1.map((x) => x).buffer instanceof SharedArrayBuffer), 'map makes a plain array');
});

t('typecodes: ranges of each type, bigint for q and Q, bad typecodes and values are typed errors', () => {
  const b = RawValue('b', 0);
  b.value = 200;
  assert.is(b.value, -56, 'b wraps as int8');
  const L = RawValue('L', 0);
  L.value = -1;
  assert.is(L.value, 2 ** 32 - 1, 'L is 32 bits');
  const q = Value('q', 5);
  assert.is(q.value, 5n, 'a safe integer given to q is a bigint');
  q.value = -(2n ** 63n);
  assert.is(q.value, -(2n ** 63n));
  const f = RawValue('f', 0.1);
  assert.is(f.value, Math.fround(0.1));
  throws(() => Value('x' as 'i', 0), TypeError, 'an unknown typecode');
  throws(() => Value('i', 'a' as never), TypeError, 'a string for i');
  throws(() => Value('i', 1.5), TypeError, 'a fraction for i (Python: TypeError)');
  throws(() => RawValue('h', Number.NaN), TypeError, 'NaN for h');
  assert.ok(Number.isNaN(RawValue('d', Number.NaN).value), 'NaN is a double');
  throws(() => Value('q', 1.5 as never), TypeError, 'a fraction for q');
  throws(() => Value('i', 0, { nope: 1 } as never), TypeError, 'an unknown option');
  throws(() => SharedArray('i', -1), RangeError);
  throws(() => SharedArray('i', {} as never), TypeError);
  throws(() => SharedArray('i', ['a'] as never), TypeError);
  const e = throws(() => {
    q.value = 'x' as never;
  }, TypeError);
  assert.match(e.message, /bigint/);
  // A bool is an int, as in ctypes (CPython's own tests do Value('i', False), then .value = True).
  const success = Value('i', false);
  assert.is(success.value, 0);
  success.value = true;
  assert.is(success.value, 1);
  assert.is(Value('d', true).value, 1);
  assert.is(Value('Q', true).value, 1n);
  assert.equal([...SharedArray('i', [true, 3, false])], [1, 3, 0]);
});

t('values and arrays through a pipe and a queue share their memory and their lock', async () => {
  const v = Value('d', 1.5);
  const arr = SharedArray('H', [1, 2, 3]);
  const raw = RawArray('i', [7]);
  const [a, b] = Pipe<unknown[]>();
  a.send([v, arr, raw]);
  const [v2, arr2, raw2] = (await b.recv({ timeout: 10_000 })) as [typeof v, typeof arr, typeof raw];
  v2.value = 2.5;
  assert.is(v.value, 2.5);
  arr2[0] = 100;
  assert.is(arr[0], 100);
  raw2[0] = 8;
  assert.is(raw[0], 8);
  v2.getLock().acquireSync();
  assert.is(v.getLock().acquireSync({ timeout: 0 }), true, 'an RLock: this thread holds it through either copy');
  v.getLock().release();
  v2.getLock().release();
  const q = open(new Queue<unknown>());
  await q.put(arr);
  const arr3 = (await q.get({ timeout: 10_000 })) as typeof arr;
  assert.ok(arr3 instanceof SharedArray);
  arr3[2] = 300;
  assert.is(arr[2], 300);
  a.close();
  b.close();
});

// Found by review: console.log(Value('i', 3)) showed `SynchronizedNumber {}`, hiding the value (Python shows
// `<Synchronized wrapper for c_int(3)>`), and a SharedArray showed its internal symbols beside its elements.
t(
  'console.log shows a Value and a RawValue with typecode and value, read without the lock; a SharedArray its elements',
  () => {
    assert.is(inspect(Value('i', 3)), "<Value typecode='i' value=3>");
    assert.is(inspect(Value('q', 5n)), "<Value typecode='q' value=5n>");
    assert.is(inspect(RawValue('d', 0.5)), "<RawValue typecode='d' value=0.5>");
    const lock = new Lock();
    const guarded = Value('i', 7, { lock });
    lock.acquireSync();
    try {
      // Reading .value here would wait for the lock this thread holds (ERR_DEADLOCK); showing it does not.
      assert.is(inspect(guarded), "<Value typecode='i' value=7>");
    } finally {
      lock.release();
    }
    assert.is(inspect(SharedArray('i', [1, 2])), 'SharedArray<i>(2) [Int32Array] [ 1, 2 ]');
  },
);

t.run();
