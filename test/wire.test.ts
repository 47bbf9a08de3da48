// The queue wire format (lib/wire.ts): BatchEncoder captures items into one V8-format buffer and decodeBatch
// reads them back. The reference is the platform: every item must come back as structuredClone() would make
// it (same types, prototypes, values, -0 and NaN, strings to the code unit, aliasing and cycles within an
// item, nothing shared across items), and every value structuredClone() refuses must throw the same
// DataCloneError at put() while leaving the batch as it was. Host objects (MessagePort, Blob, ...) are
// declined (put() returns false) so that the queue hands them to the platform's own structured clone.
import { spawnSync } from 'node:child_process';
import { BlockList } from 'node:net';
import v8 from 'node:v8';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import * as assert from 'uvu/assert';
import { BatchEncoder, BatchReader, decodeBatch } from '../lib/wire.ts';
import { suite, throws } from './_support/harness.ts';

/** Encodes `items` as one batch and decodes it. */
function roundTrip(items: unknown[], compareHinted = true): unknown[] {
  const encoder = new BatchEncoder();
  for (const item of items) encoder.put(item);
  assert.is(encoder.count, items.length);
  const batch = encoder.finish();
  assert.is(batch.n, items.length);
  assert.is(encoder.count, 0, 'finish() starts a new batch');
  // The queue decodes with the batch's hints (no back-references: shape-built objects; only scalars: V8's
  // deserializer); both ways must give the same items as decoding with none.
  const hinted = decodeBatch(batch);
  if (compareHinted) {
    same(hinted, decodeBatch(batch, false), 'hinted decode');
    // A consumer's reader decodes the items one by one, in any order.
    const reader = new BatchReader(batch);
    const one = Array.from({ length: batch.n }, (_, i) => batch.n - 1 - i).map((i) => [i, reader.item(i)] as const);
    for (const [i, item] of one) same(item, hinted[i], `item ${i} read alone`);
  }
  return hinted;
}

/**
 * Throws unless `actual` is structurally the same as `expected`: same types and prototypes, Object.is for
 * primitives, same own keys in the same order, and the same shape of object identity (an object seen twice in
 * one must be the same object seen twice in the other, and distinct objects stay distinct).
 */
function same(actual: unknown, expected: unknown, path = '$', forward = new Map<object, object>(), backward = new Map<object, object>()): void {
  const fail = (why: string): never => {
    throw new Error(`${path}: ${why}`);
  };
  if (typeof actual !== typeof expected) fail(`type ${typeof actual}, expected ${typeof expected}`);
  if (typeof expected !== 'object' || expected === null) {
    if (!Object.is(actual, expected)) fail(`${describe(actual)} !== ${describe(expected)}`);
    return;
  }
  if (actual === null) fail('null, expected an object');
  const a = actual as object, e = expected as object;
  if (forward.has(a) || backward.has(e)) {
    if (forward.get(a) !== e || backward.get(e) !== a) fail('object identity differs (aliasing or a cycle not kept, or objects shared that should not be)');
    return;
  }
  forward.set(a, e);
  backward.set(e, a);
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(e)) fail(`prototype ${Object.prototype.toString.call(a)}, expected ${Object.prototype.toString.call(e)}`);
  const tag = Object.prototype.toString.call(e);
  if (Object.prototype.toString.call(a) !== tag) fail(`${Object.prototype.toString.call(a)}, expected ${tag}`);

  if (e instanceof Date) same((a as Date).getTime(), e.getTime(), `${path}.getTime()`, forward, backward);
  else if (e instanceof RegExp) same(`${(a as RegExp).source}/${(a as RegExp).flags}`, `${e.source}/${e.flags}`, `${path}.source`, forward, backward);
  else if (e instanceof Error) {
    same((a as Error).name, e.name, `${path}.name`, forward, backward);
    same((a as Error).message, e.message, `${path}.message`, forward, backward);
    same((a as Error).stack, e.stack, `${path}.stack`, forward, backward);
    same((a as Error).cause, e.cause, `${path}.cause`, forward, backward);
  } else if (e instanceof Map) {
    const ae = [...(a as Map<unknown, unknown>)], ee = [...e];
    same(ae.length, ee.length, `${path}.size`, forward, backward);
    ee.forEach(([k, v], i) => {
      same(ae[i]![0], k, `${path}.key(${i})`, forward, backward);
      same(ae[i]![1], v, `${path}.get(${describe(k)})`, forward, backward);
    });
  } else if (e instanceof Set) {
    const ae = [...(a as Set<unknown>)], ee = [...e];
    same(ae.length, ee.length, `${path}.size`, forward, backward);
    ee.forEach((v, i) => same(ae[i], v, `${path}.entry(${i})`, forward, backward));
  } else if (e instanceof ArrayBuffer) {
    same([...new Uint8Array(a as ArrayBuffer)].join(), [...new Uint8Array(e)].join(), `${path} bytes`, forward, backward);
  } else if (ArrayBuffer.isView(e)) {
    const av = a as ArrayBufferView;
    same(av.byteOffset, e.byteOffset, `${path}.byteOffset`, forward, backward);
    same(av.byteLength, e.byteLength, `${path}.byteLength`, forward, backward);
    same(av.buffer, e.buffer, `${path}.buffer`, forward, backward);
  } else if (typeof (e as { valueOf(): unknown }).valueOf === 'function' && isBoxed(e)) {
    same((a as { valueOf(): unknown }).valueOf(), (e as { valueOf(): unknown }).valueOf(), `${path}.valueOf()`, forward, backward);
  }
  // Own properties (arrays: indices, holes stay holes, length and extra properties too).
  const ak = Reflect.ownKeys(a), ek = Reflect.ownKeys(e);
  same(ak.map(String).join(','), ek.map(String).join(','), `${path} own keys`, forward, backward);
  for (const key of ek) {
    if (e instanceof Error && key === 'stack') continue;
    const ad = Object.getOwnPropertyDescriptor(a, key)!, ed = Object.getOwnPropertyDescriptor(e, key)!;
    if (!('value' in ad)) fail(`${String(key)} is an accessor`);
    same(ad.enumerable, ed.enumerable, `${path}[${describe(key)}] enumerable`, forward, backward);
    same(ad.value, ed.value, `${path}[${describe(key)}]`, forward, backward);
  }
}

function isBoxed(value: object): boolean {
  return value instanceof Number || value instanceof String || value instanceof Boolean || value instanceof BigInt;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'symbol') return value.toString();
  if (Object.is(value, -0)) return '-0';
  return String(value);
}

/** Asserts that every item of `items`, encoded together and one at a time, decodes as structuredClone makes it. */
function assertRoundTrips(items: unknown[], what: string): void {
  const expected = items.map((item) => structuredClone(item));
  const together = roundTrip(items);
  assert.is(together.length, items.length, `${what}: item count`);
  items.forEach((_, i) => same(together[i], expected[i], `${what}[${i}] (in one batch)`));
  items.forEach((item, i) => same(roundTrip([item])[0], expected[i], `${what}[${i}] (alone)`));
  // Decoded items never share objects with each other (each is its own clone).
  same(together, expected, `${what} (identity across items)`);
}

// ---------------------------------------------------------------------------------------------------------
const t = suite('wire: BatchEncoder / decodeBatch');

t('primitives, -0, NaN and numbers at every boundary', () => {
  assertRoundTrips([
    undefined, null, true, false,
    0, -0, 1, -1, 42, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, -(2 ** 31) - 1, 2 ** 32, 2 ** 53, -(2 ** 53), 1.5, -1.5,
    NaN, Infinity, -Infinity, Number.MIN_VALUE, Number.MAX_VALUE, Number.EPSILON, 0.1 + 0.2,
  ], 'numbers');
});

t('strings: Latin-1, two-byte, emoji, lone surrogates, long ones', () => {
  const long1 = 'latin1 é ÿ '.repeat(5_000);
  const long2 = 'two-byte € 漢字 😀 '.repeat(5_000);
  assertRoundTrips([
    '', 'a', 'hello world', 'é', '\xff', '\0', 'nul\0inside', 'x'.repeat(17),
    '€', '漢字', '😀', 'a😀b', '\ud800', '\udc00', 'x\ud800', '\udc00\ud800', 'a\ud83dz', '\ud83d\ude00\ud83d',
    '\ufeff', '\uffff', long1, long2, long2 + '\ud800',
  ], 'strings');
  const [lone] = roundTrip(['\ud800x']) as string[];
  assert.is(lone!.charCodeAt(0), 0xd800, 'a lone surrogate keeps its code unit');
});

t('plain objects and arrays, nested; odd keys', () => {
  const withProto = JSON.parse('{"__proto__": {"x": 1}, "a": 2}');
  const nullProto = Object.assign(Object.create(null), { a: 1, b: { c: [1, 2] } });
  assertRoundTrips([
    {}, [], { a: 1, b: 'two', c: [3, { d: [4, [5, [6]]] }] }, [1, 'two', null, undefined, { x: -0 }],
    { 1: 'one', 0: 'zero', b: 'b', a: 'a', '-1': 'neg', '1.5': 'frac', '': 'empty', '€': 'euro', '\ud800': 'lone' },
    withProto, nullProto,
    Array.from({ length: 1_000 }, (_, i) => ({ i, s: `s${i}` })),
    { nested: { deeper: { deepest: { value: 'v' } } } },
  ], 'objects');
  const [decoded] = roundTrip([withProto]) as Record<string, unknown>[];
  assert.ok(Object.hasOwn(decoded!, '__proto__'), '__proto__ stays an own property');
  assert.is(Object.getPrototypeOf(decoded), Object.prototype);
});

t('sparse arrays, holes, and arrays with extra properties', () => {
  // eslint-disable-next-line no-sparse-arrays
  const sparse = [1, , 3];
  const trailing = [1, 2];
  trailing.length = 4;
  const extra = Object.assign([1, 2], { label: 'x' });
  const emptyExtra = Object.assign([], { label: 'y' });
  assertRoundTrips([sparse, new Array(5), trailing, extra, emptyExtra, { list: sparse }, [[, 1], [2, ,]]], 'arrays');
});

t('aliasing and cycles within an item; nothing shared across items', () => {
  const shared = { v: 1 };
  const aliased = { a: shared, b: [shared, shared], c: { d: shared } };
  const cyclic: Record<string, unknown> = { name: 'cycle' };
  cyclic.self = cyclic;
  cyclic.list = [cyclic, { back: cyclic }];
  const arrayCycle: unknown[] = [1];
  arrayCycle.push(arrayCycle);
  // More than 16 objects in one item, aliased across the whole item (the encoder switches to a Map there).
  const many = Array.from({ length: 40 }, (_, i) => ({ i }));
  const wide = { many, again: [...many].reverse(), first: many[0] };
  assertRoundTrips([shared, aliased, cyclic, arrayCycle, wide, aliased, shared, cyclic], 'aliasing');

  const decoded = roundTrip([aliased, shared, aliased]) as (typeof aliased)[];
  const [first, lone, second] = decoded as [typeof aliased, typeof shared, typeof aliased];
  assert.ok(first.a === first.b[0] && first.a === first.b[1] && first.a === first.c.d, 'aliases within an item are kept');
  assert.ok(first !== second && first.a !== second.a && first.a !== (lone as unknown), 'nothing is shared across items');
  first.a.v = 99;
  assert.is(second.a.v, 1);

  const [c] = roundTrip([cyclic]) as Record<string, unknown>[];
  assert.is(c!.self, c, 'a cycle comes back as a cycle');
});

t('an item is captured at put(): later changes to it do not show', () => {
  const encoder = new BatchEncoder();
  const item = { list: [1], map: new Map([['k', 1]]) };
  encoder.put(item);
  item.list.push(2);
  item.map.set('k', 2);
  encoder.put(item);
  const batch = encoder.finish();
  const [before, after] = decodeBatch(batch, false) as (typeof item)[];
  assert.equal(before!.list, [1]);
  assert.is(before!.map.get('k'), 1);
  assert.equal(after!.list, [1, 2]);
  assert.is(after!.map.get('k'), 2);
});

t('Date, RegExp, Map, Set, boxed primitives, bigint, Error, class instances, getters', () => {
  class Point {
    x = 1;
    y = 2;
    get sum() { return this.x + this.y; }
  }
  const key = { k: 1 };
  const withGetter = { plain: 1, get computed() { return 'from a getter'; } };
  const errorWithCause = new RangeError('out of range', { cause: { code: 7 } });
  assertRoundTrips([
    new Date(0), new Date(1_700_000_000_000), new Date(NaN), /a+b/gi, /x/,
    new Map<unknown, unknown>([[1, 'one'], ['two', 2], [key, { value: key }]]),
    new Set<unknown>([1, 'one', key, [key]]),
    { map: new Map([[key, key]]), set: new Set([key]), key },
    new Number(3), new String('boxed'), new Boolean(false), Object(10n),
    10n, -(2n ** 70n), 0n, { big: 2n ** 64n },
    new Error('plain'), new TypeError('typed'), errorWithCause, { error: new Error('nested') },
    new Point(), withGetter, [withGetter, withGetter],
  ], 'objects of every kind');
  const [getter] = roundTrip([withGetter]) as Record<string, unknown>[];
  assert.equal(getter, { plain: 1, computed: 'from a getter' }, 'getters are read at put and arrive as data');
});

t('typed arrays, DataView, ArrayBuffer and Buffer', () => {
  const backing = new ArrayBuffer(32);
  new Uint8Array(backing).forEach((_, i, a) => { a[i] = i; });
  const sub = new Int16Array(backing, 4, 6);
  assertRoundTrips([
    new Uint8Array([1, 2, 3]), new Int8Array([-1, 127]), new Uint16Array([65535]), new Int32Array([-(2 ** 31)]),
    new Float32Array([1.5, NaN]), new Float64Array([-0, Infinity, NaN]), new BigInt64Array([-(2n ** 63n)]),
    new BigUint64Array([2n ** 64n - 1n]), new Uint8ClampedArray([255]), new DataView(backing, 8, 8),
    backing, sub, { view: sub, again: sub, buffer: backing }, Buffer.from('bytes'), new Uint8Array(0),
  ], 'binary');
});

t('values structuredClone refuses throw DataCloneError and leave the batch intact', () => {
  function args(..._: unknown[]) {
    // eslint-disable-next-line prefer-rest-params
    return arguments;
  }
  const uncloneable: [string, unknown][] = [
    ['a function', () => 1],
    ['a symbol', Symbol('s')],
    ['an object with a function field', { ok: 1, f() {} }],
    ['an array holding a function', [1, () => 2]],
    ['a nested symbol', { deep: { s: Symbol.iterator } }],
    ['a WeakMap', new WeakMap()],
    ['a Promise', Promise.resolve(1)],
    ['a Proxy', new Proxy({}, {})],
    ['an arguments object', args(1, 2)],
    ['a function after aliased objects', (() => { const o = { n: 1 }; return [o, o, { f: () => o }]; })()],
  ];
  const encoder = new BatchEncoder();
  const good: unknown[] = [];
  const shared = { s: 'shared' };
  for (const [what, value] of uncloneable) {
    let platform: unknown;
    try {
      structuredClone(value);
    } catch (error) {
      platform = error;
    }
    assert.ok(platform instanceof DOMException && platform.name === 'DataCloneError', `structuredClone refuses ${what}`);
    // An item before and after each failure, with aliasing, so a half-written item would corrupt them.
    const before = { i: good.length, shared: [shared, shared] };
    encoder.put(before);
    good.push(before);
    const count = encoder.count;
    const error = throws(() => encoder.put(value), DOMException, `put(${what})`);
    assert.is(error.name, 'DataCloneError', `put(${what})`);
    assert.is(encoder.count, count, `put(${what}) added nothing`);
    const after = { i: good.length, text: `after ${what}`, big: 1n };
    encoder.put(after);
    good.push(after);
  }
  const batch = encoder.finish();
  const decoded = decodeBatch(batch, false);
  assert.is(decoded.length, good.length);
  good.forEach((item, i) => same(decoded[i], structuredClone(item), `item ${i}`));
});

t('host objects (MessagePort, Blob, BlockList) are declined: put() returns false and adds nothing', () => {
  const { port1 } = new MessageChannel();
  const encoder = new BatchEncoder();
  assert.is(encoder.put({ first: [1] }), true);
  for (const [what, value] of [['a MessagePort', { port: port1 }], ['a Blob', [new Blob(['x'])]], ['a BlockList', new BlockList()]] as const) {
    assert.is(encoder.put(value), false, `put(${what})`);
    assert.is(encoder.count, 1, `put(${what}) added nothing`);
  }
  // A value the platform refuses anyway still throws DataCloneError, host object or not.
  assert.is(throws(() => encoder.put({ f: () => 1, port: port1 }), DOMException).name, 'DataCloneError');
  assert.is(encoder.put({ last: 'x' }), true);
  const batch = encoder.finish();
  assert.equal(decodeBatch(batch, false), [{ first: [1] }, { last: 'x' }]);
  port1.close();
});

t('objects the encoder is told to decline (queue handles) make put() return false, found at any depth', () => {
  class Handle {}
  const encoder = new BatchEncoder({ declines: (v) => v instanceof Handle });
  assert.ok(encoder.put({ first: [1] }));
  assert.is(encoder.put(new Handle()), false);
  assert.is(encoder.put({ a: [1, { h: new Handle() }] }), false);
  let deep: unknown = { h: new Handle() };
  for (let i = 0; i < 20_000; i++) deep = [deep]; // deeper than the encoder's own recursion goes
  assert.is(encoder.put(deep), false);
  assert.ok(encoder.put(new Map([['not walked', new Handle()]])), 'only arrays and plain objects are searched');
  assert.is(encoder.count, 2);
  const batch = encoder.finish();
  const decoded = decodeBatch(batch, false);
  assert.equal(decoded[0], { first: [1] });
  assert.ok(decoded[1] instanceof Map);
});

t('a getter that throws: put() throws that error and leaves the batch intact', () => {
  const boom = new Error('getter failed');
  const encoder = new BatchEncoder();
  encoder.put({ first: 1 });
  const bad = { ok: [1, 2], get broken(): never { throw boom; } };
  try {
    encoder.put(bad);
    assert.unreachable('put() of an object whose getter throws');
  } catch (error) {
    assert.is(error, boom);
  }
  encoder.put({ last: [3] });
  const batch = encoder.finish();
  assert.equal(decodeBatch(batch, false), [{ first: 1 }, { last: [3] }]);
});

t('the batch bytes are V8 serialization format, objects aside; a batch grows past its first buffer', () => {
  const items = Array.from({ length: 3_000 }, (_, i) => [i, `item ${i} €`, [i, -i, i / 3], true, null]);
  const encoder = new BatchEncoder({ capacity: 64 }); // tiny on purpose: it must grow many times
  for (const item of items) encoder.put(item);
  const batch = encoder.finish();
  assert.is(batch.side, null, 'plain data needs no side items');
  assert.is(batch.shapes, undefined, 'no objects, no shapes');
  assert.ok(batch.transfer.includes(batch.bytes));
  same(v8.deserialize(Buffer.from(batch.bytes)), structuredClone(items), 'v8.deserialize of the batch');
  same(decodeBatch(batch, false), structuredClone(items), 'decodeBatch');
  // The encoder is reusable after finish().
  encoder.put('again');
  const next = encoder.finish();
  assert.equal(decodeBatch(next, false), ['again']);
});

t('objects of one shape carry their keys once per batch, and every batch names the shapes it uses', () => {
  const encoder = new BatchEncoder();
  const items = Array.from({ length: 100 }, (_, i) => ({ id: i, name: `n${i}`, tags: [{ id: -i, name: 'inner' }] }));
  const other = { b: 1, a: 2 }; // same keys, other order: another shape
  for (const item of items) encoder.put(item);
  encoder.put(other);
  const first = encoder.finish();
  assert.equal(first.shapes, [['id', 'name', 'tags'], ['id', 'name'], ['b', 'a']]);
  assert.ok(first.bytes.byteLength < 100 * 40, `${first.bytes.byteLength} bytes: the keys were written per object`);
  same(decodeBatch(first), structuredClone([...items, other]));
  same(decodeBatch(first, false), structuredClone([...items, other]));
  // A later batch numbers its shapes afresh: a consumer may see it without the first.
  encoder.put({ b: 3, a: 4 });
  const second = encoder.finish();
  assert.equal(second.shapes, [['b', 'a']]);
  same(new BatchReader(second).item(0), { b: 3, a: 4 });
  // Keys an object literal would not keep as written (a __proto__ key, integer-like keys) still round-trip.
  const odd = [
    JSON.parse('{"__proto__": 1, "x": 2}'), { 2: 'b', 1: 'a', z: 0 }, Object.assign(Object.create(null), { k: 1 }),
    { 'a\u0000b': 1 }, { a: 2, b: 3 }, { '"}; throw 1; //': 4 }, // keys that could be confused when joined, or quoted badly
  ];
  same(roundTrip(odd), structuredClone(odd));
});

t('batch hints: scalars only for numbers, booleans, null and undefined; refs only with aliasing', () => {
  const hints = (items: unknown[]) => {
    const encoder = new BatchEncoder();
    for (const item of items) encoder.put(item);
    const { refs, scalars } = encoder.finish();
    return { refs, scalars };
  };
  assert.equal(hints([1, -0, NaN, 2.5, true, null, undefined]), { refs: false, scalars: true });
  assert.equal(hints([1, 'a']), { refs: false, scalars: false });
  assert.equal(hints([1, 2n]), { refs: false, scalars: false }); // bigint goes beside the batch
  assert.equal(hints([{ a: 1 }, [1]]), { refs: false, scalars: false });
  const shared = { x: 1 };
  assert.equal(hints([{ a: shared, b: shared }]), { refs: true, scalars: false });
  // Objects built from a learned shape: same keys in the same order, a plain prototype, even for odd keys.
  for (let i = 0; i < 3; i++) {
    const items = [{ 2: 'a', 1: 'b', x: 1 }, JSON.parse('{"__proto__": 5, "a": 1}'), { '': 1, 'a"b': 2, "c'd\n": 3 }, { a: { b: {} } }];
    same(roundTrip(items), structuredClone(items));
  }
});

t('shaped objects decode where code generation is off (node --disallow-code-generation-from-strings)', () => {
  const wire = fileURLToPath(new URL('../lib/wire.ts', import.meta.url));
  const program = `
    import { BatchEncoder, BatchReader, decodeBatch } from ${JSON.stringify(wire)};
    const encoder = new BatchEncoder();
    for (let i = 0; i < 3; i++) encoder.put({ a: i, b: { c: 'x' } });
    const batch = encoder.finish();
    console.log(JSON.stringify([decodeBatch(batch), new BatchReader(batch).item(2)]));`;
  const child = spawnSync(process.execPath, ['--disallow-code-generation-from-strings', '--import', 'tsx', '--input-type=module', '-e', program], { encoding: 'utf8', timeout: 60_000 });
  assert.is(child.status, 0, child.stderr);
  assert.equal(JSON.parse(child.stdout), [[{ a: 0, b: { c: 'x' } }, { a: 1, b: { c: 'x' } }, { a: 2, b: { c: 'x' } }], { a: 2, b: { c: 'x' } }]);
});

t('very deep values round-trip (the encoder hands them to V8)', () => {
  let deep: unknown = 'bottom';
  for (let i = 0; i < 3_000; i++) deep = [deep];
  const [decoded] = roundTrip([deep], false); // same() would overflow the stack
  let depth = 0;
  for (let v = decoded; Array.isArray(v); v = v[0]) depth++;
  assert.is(depth, 3_000);
  // Deep objects too, decoded the way the queue does (with the batch's hints).
  let nested: unknown = 'bottom';
  for (let i = 0; i < 3_000; i++) nested = { a: nested };
  let [o] = roundTrip([nested], false) as [unknown];
  let levels = 0;
  for (; typeof o === 'object' && o !== null; o = (o as { a: unknown }).a) levels++;
  assert.is(levels, 3_000);
  assert.is(o, 'bottom');
});

t.run();
