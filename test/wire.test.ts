// The wire format (lib/wire/): the Encoder captures items into one buffer and decodeBatch / BatchReader read
// them back. The reference is the platform: every item must come back as structuredClone() would make it
// (same types, prototypes, values, -0 and NaN, strings to the code unit, aliasing and cycles within an item,
// nothing shared across items), every value structuredClone() refuses must throw the same DataCloneError at
// put() while leaving the batch as it was, and each property is read once, as structured clone reads it.
// Host objects (MessagePort, Blob, ...) are carried beside the bytes for the platform to clone.
import { spawnSync } from 'node:child_process';
import { BlockList } from 'node:net';
import v8 from 'node:v8';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import * as assert from 'uvu/assert';
import fc from 'fast-check';
import { registerClass } from '../lib/index.ts';
import { cloneDiff, hostile } from './reliability/oracle.ts';
import { Carrying, kMaxDepth, type Batch } from '../lib/wire/format.ts';
import { BatchReader, decodeBatch, decodeItem } from '../lib/wire/decode.ts';
import { Encoder } from '../lib/wire/encode.ts';
import { suite, throws } from './_support/harness.ts';

/** The batch's hints off: decode keeping object ids, and scalars with our decoder, the sure way. */
function unhinted(batch: Batch): Batch {
  return { ...batch, refs: true, scalars: false };
}

/** Encodes `items` as one batch and decodes it. */
function roundTrip(items: unknown[], compareHinted = true): unknown[] {
  const encoder = new Encoder();
  for (const item of items) encoder.put(item);
  assert.is(encoder.count, items.length);
  const { batch } = encoder.finish();
  assert.is(batch.n, items.length);
  assert.is(encoder.count, 0, 'finish() starts a new batch');
  // The queue decodes with the batch's hints (no back-references: shape-built objects; only scalars: V8's
  // deserializer); both ways must give the same items as decoding with none.
  const hinted = decodeBatch(batch);
  if (compareHinted) {
    same(hinted, decodeBatch(unhinted(batch)), 'hinted decode');
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
function same(
  actual: unknown,
  expected: unknown,
  path = '$',
  forward = new Map<object, object>(),
  backward = new Map<object, object>(),
): void {
  const fail = (why: string): never => {
    throw new Error(`${path}: ${why}`);
  };
  if (typeof actual !== typeof expected) fail(`type ${typeof actual}, expected ${typeof expected}`);
  if (typeof expected !== 'object' || expected === null) {
    if (!Object.is(actual, expected)) fail(`${describe(actual)} !== ${describe(expected)}`);
    return;
  }
  if (actual === null) fail('null, expected an object');
  const a = actual as object,
    e = expected as object;
  if (forward.has(a) || backward.has(e)) {
    if (forward.get(a) !== e || backward.get(e) !== a)
      fail('object identity differs (aliasing or a cycle not kept, or objects shared that should not be)');
    return;
  }
  forward.set(a, e);
  backward.set(e, a);
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(e))
    fail(`prototype ${Object.prototype.toString.call(a)}, expected ${Object.prototype.toString.call(e)}`);
  const tag = Object.prototype.toString.call(e);
  if (Object.prototype.toString.call(a) !== tag) fail(`${Object.prototype.toString.call(a)}, expected ${tag}`);

  if (e instanceof Date) same((a as Date).getTime(), e.getTime(), `${path}.getTime()`, forward, backward);
  else if (e instanceof RegExp)
    same(
      `${(a as RegExp).source}/${(a as RegExp).flags}`,
      `${e.source}/${e.flags}`,
      `${path}.source`,
      forward,
      backward,
    );
  else if (e instanceof Error) {
    same((a as Error).name, e.name, `${path}.name`, forward, backward);
    same((a as Error).message, e.message, `${path}.message`, forward, backward);
    same((a as Error).stack, e.stack, `${path}.stack`, forward, backward);
    same((a as Error).cause, e.cause, `${path}.cause`, forward, backward);
  } else if (e instanceof Map) {
    const ae = [...(a as Map<unknown, unknown>)],
      ee = [...e];
    same(ae.length, ee.length, `${path}.size`, forward, backward);
    ee.forEach(([k, v], i) => {
      same(ae[i]![0], k, `${path}.key(${i})`, forward, backward);
      same(ae[i]![1], v, `${path}.get(${describe(k)})`, forward, backward);
    });
  } else if (e instanceof Set) {
    const ae = [...(a as Set<unknown>)],
      ee = [...e];
    same(ae.length, ee.length, `${path}.size`, forward, backward);
    ee.forEach((v, i) => {
      same(ae[i], v, `${path}.entry(${i})`, forward, backward);
    });
  } else if (e instanceof ArrayBuffer) {
    same(
      [...new Uint8Array(a as ArrayBuffer)].join(),
      [...new Uint8Array(e)].join(),
      `${path} bytes`,
      forward,
      backward,
    );
  } else if (ArrayBuffer.isView(e)) {
    const av = a as ArrayBufferView;
    same(av.byteOffset, e.byteOffset, `${path}.byteOffset`, forward, backward);
    same(av.byteLength, e.byteLength, `${path}.byteLength`, forward, backward);
    same(av.buffer, e.buffer, `${path}.buffer`, forward, backward);
  } else if (typeof (e as { valueOf(): unknown }).valueOf === 'function' && isBoxed(e)) {
    same(
      (a as { valueOf(): unknown }).valueOf(),
      (e as { valueOf(): unknown }).valueOf(),
      `${path}.valueOf()`,
      forward,
      backward,
    );
  }
  // Own properties (arrays: indices, holes stay holes, length and extra properties too).
  const ak = Reflect.ownKeys(a),
    ek = Reflect.ownKeys(e);
  same(ak.map(String).join(','), ek.map(String).join(','), `${path} own keys`, forward, backward);
  for (const key of ek) {
    if (e instanceof Error && key === 'stack') continue;
    const ad = Object.getOwnPropertyDescriptor(a, key)!,
      ed = Object.getOwnPropertyDescriptor(e, key)!;
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
  items.forEach((_, i) => {
    same(together[i], expected[i], `${what}[${i}] (in one batch)`);
  });
  items.forEach((item, i) => {
    same(roundTrip([item])[0], expected[i], `${what}[${i}] (alone)`);
  });
  // Decoded items never share objects with each other (each is its own clone).
  same(together, expected, `${what} (identity across items)`);
}

// ---------------------------------------------------------------------------------------------------------
const t = suite('wire: Encoder / decodeBatch');

t('primitives, -0, NaN and numbers at every boundary', () => {
  assertRoundTrips(
    [
      undefined,
      null,
      true,
      false,
      0,
      -0,
      1,
      -1,
      42,
      2 ** 31 - 1,
      -(2 ** 31),
      2 ** 31,
      -(2 ** 31) - 1,
      2 ** 32,
      2 ** 53,
      -(2 ** 53),
      1.5,
      -1.5,
      NaN,
      Infinity,
      -Infinity,
      Number.MIN_VALUE,
      Number.MAX_VALUE,
      Number.EPSILON,
      0.1 + 0.2,
    ],
    'numbers',
  );
});

t('strings: Latin-1, two-byte, emoji, lone surrogates, long ones', () => {
  const long1 = 'latin1 é ÿ '.repeat(5_000);
  const long2 = 'two-byte € 漢字 😀 '.repeat(5_000);
  assertRoundTrips(
    [
      '',
      'a',
      'hello world',
      'é',
      '\xff',
      '\0',
      'nul\0inside',
      'x'.repeat(17),
      '€',
      '漢字',
      '😀',
      'a😀b',
      '\ud800',
      '\udc00',
      'x\ud800',
      '\udc00\ud800',
      'a\ud83dz',
      '\ud83d\ude00\ud83d',
      '\ufeff',
      '\uffff',
      long1,
      long2,
      `${long2}\ud800`,
    ],
    'strings',
  );
  const [lone] = roundTrip(['\ud800x']) as string[];
  assert.is(lone!.charCodeAt(0), 0xd800, 'a lone surrogate keeps its code unit');
});

t('plain objects and arrays, nested; odd keys', () => {
  const withProto = JSON.parse('{"__proto__": {"x": 1}, "a": 2}');
  const nullProto = Object.assign(Object.create(null), { a: 1, b: { c: [1, 2] } });
  assertRoundTrips(
    [
      {},
      [],
      { a: 1, b: 'two', c: [3, { d: [4, [5, [6]]] }] },
      [1, 'two', null, undefined, { x: -0 }],
      { 1: 'one', 0: 'zero', b: 'b', a: 'a', '-1': 'neg', '1.5': 'frac', '': 'empty', '€': 'euro', '\ud800': 'lone' },
      withProto,
      nullProto,
      Array.from({ length: 1_000 }, (_, i) => ({ i, s: `s${i}` })),
      { nested: { deeper: { deepest: { value: 'v' } } } },
    ],
    'objects',
  );
  const [decoded] = roundTrip([withProto]) as Record<string, unknown>[];
  assert.ok(Object.hasOwn(decoded!, '__proto__'), '__proto__ stays an own property');
  assert.is(Object.getPrototypeOf(decoded), Object.prototype);
});

t('sparse arrays, holes, and arrays with extra properties', () => {
  const sparse = [1, , 3];
  const trailing = [1, 2];
  trailing.length = 4;
  const extra = Object.assign([1, 2], { label: 'x' });
  const emptyExtra = Object.assign([], { label: 'y' });
  assertRoundTrips(
    [
      sparse,
      new Array(5),
      trailing,
      extra,
      emptyExtra,
      { list: sparse },
      [
        [, 1],
        [2, ,],
      ],
    ],
    'arrays',
  );
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
  assert.ok(
    first.a === first.b[0] && first.a === first.b[1] && first.a === first.c.d,
    'aliases within an item are kept',
  );
  assert.ok(
    first !== second && first.a !== second.a && first.a !== (lone as unknown),
    'nothing is shared across items',
  );
  first.a.v = 99;
  assert.is(second.a.v, 1);

  const [c] = roundTrip([cyclic]) as Record<string, unknown>[];
  assert.is(c!.self, c, 'a cycle comes back as a cycle');
});

t('an item is captured at put(): later changes to it do not show', () => {
  const encoder = new Encoder();
  const item = { list: [1], map: new Map([['k', 1]]) };
  encoder.put(item);
  item.list.push(2);
  item.map.set('k', 2);
  encoder.put(item);
  const { batch } = encoder.finish();
  const [before, after] = decodeBatch(unhinted(batch)) as (typeof item)[];
  assert.equal(before!.list, [1]);
  assert.is(before!.map.get('k'), 1);
  assert.equal(after!.list, [1, 2]);
  assert.is(after!.map.get('k'), 2);
});

t('Date, RegExp, Map, Set, boxed primitives, bigint, Error, class instances, getters', () => {
  class Point {
    x = 1;
    y = 2;
    get sum() {
      return this.x + this.y;
    }
  }
  const key = { k: 1 };
  const withGetter = {
    plain: 1,
    get computed() {
      return 'from a getter';
    },
  };
  const errorWithCause = new RangeError('out of range', { cause: { code: 7 } });
  const selfCause = new Error('cycle');
  selfCause.cause = { back: selfCause };
  assertRoundTrips(
    [
      new Date(0),
      new Date(1_700_000_000_000),
      new Date(NaN),
      /a+b/gi,
      /x/,
      /s/dgimsuy,
      // biome-ignore lint/complexity/useRegexLiterals: a /v literal needs an ES2024 target; the RegExp does not
      new RegExp('[\\p{L}]', 'v'),
      new Map<unknown, unknown>([
        [1, 'one'],
        ['two', 2],
        [key, { value: key }],
      ]),
      new Set<unknown>([1, 'one', key, [key]]),
      { map: new Map([[key, key]]), set: new Set([key]), key },
      new Number(3),
      new String('boxed'),
      new Boolean(false),
      new Boolean(true),
      Object(10n),
      Object(-(2n ** 80n)),
      10n,
      -(2n ** 70n),
      0n,
      -1n,
      255n,
      256n,
      2n ** 64n - 1n,
      { big: 2n ** 64n },
      new Error('plain'),
      new TypeError('typed'),
      new EvalError('e'),
      new URIError('u'),
      new SyntaxError('s'),
      new ReferenceError('r'),
      errorWithCause,
      { error: new Error('nested') },
      new Error(),
      new Point(),
      withGetter,
      [withGetter, withGetter],
    ],
    'objects of every kind',
  );
  const [getter] = roundTrip([withGetter]) as Record<string, unknown>[];
  assert.equal(getter, { plain: 1, computed: 'from a getter' }, 'getters are read at put and arrive as data');
  // An error whose cause refers back to it: structuredClone here cannot rebuild it ("Unable to deserialize
  // cloned data"); the wire keeps the cycle.
  const [cyclic] = roundTrip([selfCause]) as Error[];
  assert.is(cyclic!.message, 'cycle');
  assert.ok((cyclic!.cause as { back: Error }).back === cyclic);
});

t('typed arrays, DataView, ArrayBuffer and Buffer', () => {
  const backing = new ArrayBuffer(32);
  new Uint8Array(backing).forEach((_, i, a) => {
    a[i] = i;
  });
  const sub = new Int16Array(backing, 4, 6);
  assertRoundTrips(
    [
      new Uint8Array([1, 2, 3]),
      new Int8Array([-1, 127]),
      new Uint16Array([65535]),
      new Int32Array([-(2 ** 31)]),
      new Float32Array([1.5, NaN]),
      new Float64Array([-0, Infinity, NaN]),
      new BigInt64Array([-(2n ** 63n)]),
      new BigUint64Array([2n ** 64n - 1n]),
      new Uint8ClampedArray([255]),
      new DataView(backing, 8, 8),
      backing,
      sub,
      { view: sub, again: sub, buffer: backing },
      Buffer.from('bytes'),
      new Uint8Array(0),
      [new Uint8Array(backing), new Uint16Array(backing, 2, 3)], // two views of one buffer stay on one buffer
    ],
    'binary',
  );
});

t('values structuredClone refuses throw DataCloneError and leave the batch intact', () => {
  function args(..._: unknown[]) {
    return arguments;
  }
  const revoked = Proxy.revocable({}, {});
  revoked.revoke();
  const uncloneable: [string, unknown][] = [
    ['a function', () => 1],
    ['a symbol', Symbol('s')],
    ['an object with a function field', { ok: 1, f() {} }],
    ['an array holding a function', [1, () => 2]],
    ['a nested symbol', { deep: { s: Symbol.iterator } }],
    ['a WeakMap', new WeakMap()],
    ['a WeakSet', new WeakSet()],
    ['a WeakRef', new WeakRef({})],
    ['a Promise', Promise.resolve(1)],
    ['a Proxy', new Proxy({}, {})],
    ['a revoked Proxy', revoked.proxy],
    ['a revoked Proxy inside', { p: revoked.proxy }],
    ['an arguments object', args(1, 2)],
    ['a symbol object', Object(Symbol('boxed'))],
    ['a Map iterator', new Map().keys()],
    [
      'a function after aliased objects',
      (() => {
        const o = { n: 1 };
        return [o, o, { f: () => o }];
      })(),
    ],
    [
      'a function inside a class instance',
      new (class Holder {
        f = () => 1;
      })(),
    ],
    ['a function inside a Map', new Map([['k', { f() {} }]])],
  ];
  const encoder = new Encoder();
  const good: unknown[] = [];
  const shared = { s: 'shared' };
  for (const [what, value] of uncloneable) {
    let platform: unknown;
    try {
      structuredClone(value);
    } catch (error) {
      platform = error;
    }
    assert.ok(
      platform instanceof DOMException && platform.name === 'DataCloneError',
      `structuredClone refuses ${what}`,
    );
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
  const { batch } = encoder.finish();
  const decoded = decodeBatch(unhinted(batch));
  assert.is(decoded.length, good.length);
  good.forEach((item, i) => {
    same(decoded[i], structuredClone(item), `item ${i}`);
  });
});

t('each property is read once, as structured clone reads it (getters, deletions, truncations, additions)', () => {
  // A counting getter next to values of every kind the encoder writes: one read each.
  for (const other of [new Date(0), 1n, new Map([[1, 2]]), new Uint8Array(2), new Error('x'), /r/, [1, , 3]]) {
    let reads = 0;
    const item = {
      get counted() {
        reads++;
        return reads;
      },
      other,
    };
    const [decoded] = roundTrip([item], false) as { counted: number }[];
    assert.is(reads, 1, `getter reads beside ${Object.prototype.toString.call(other)}`);
    assert.is(decoded!.counted, 1);
  }
  // A getter that throws on its second read: put() reads it once, so it succeeds.
  let calls = 0;
  const once = {
    get v() {
      if (++calls > 1) throw new Error('read twice');
      return 'ok';
    },
    d: new Date(1),
  };
  assert.equal((roundTrip([once], false)[0] as { v: string }).v, 'ok');
  // A getter that deletes a later key: the key is left out, as structuredClone leaves it out.
  const deleting = () => ({
    get a() {
      delete (this as { b?: number }).b;
      return 1;
    },
    b: 2,
    c: 3,
  });
  same(roundTrip([deleting()], false)[0], structuredClone(deleting()), 'a deleted key');
  assert.equal(Object.keys(roundTrip([deleting()], false)[0] as object), ['a', 'c']);
  // ... also for an object of a shape the encoder knows already.
  const encoder = new Encoder();
  encoder.put({ a: 0, b: 0, c: 0 });
  encoder.put(deleting());
  const [, known] = decodeBatch(encoder.finish().batch) as object[];
  assert.equal(Object.keys(known!), ['a', 'c']);
  // An array whose first element's getter truncates it: the length stays, the rest become holes.
  const truncating = () => {
    const a = [1, 2, 3];
    Object.defineProperty(a, 0, {
      get() {
        a.length = 1;
        return 1;
      },
      enumerable: true,
      configurable: true,
    });
    return a;
  };
  const [truncated] = roundTrip([truncating()], false) as unknown[][];
  assert.is(truncated!.length, structuredClone(truncating()).length);
  assert.is(truncated!.length, 3);
  assert.equal(Object.keys(truncated!), ['0']);
  // Keys a getter adds are not picked up (structured clone takes the key list first).
  const adding = {
    get a() {
      (this as Record<string, number>).z = 1;
      return 1;
    },
    b: 2,
  };
  assert.equal(Object.keys(roundTrip([adding], false)[0] as object), ['a', 'b']);
});

t('walks cost what the value holds: a sparse array of length 2^32-1', () => {
  const sparse: unknown[] = [];
  sparse[2 ** 32 - 2] = 'last';
  sparse[7] = { seven: 7 };
  const nested = { list: sparse, more: [sparse] };
  const t0 = performance.now();
  const [a, b] = roundTrip([sparse, nested], false) as [unknown[], { list: unknown[]; more: unknown[][] }];
  const ms = performance.now() - t0;
  assert.is(a.length, 2 ** 32 - 1);
  assert.is(a[2 ** 32 - 2], 'last');
  assert.equal(a[7], { seven: 7 });
  assert.equal(Object.keys(a), ['7', '4294967294']);
  assert.ok(b.list === b.more[0], 'aliasing kept');
  // structuredClone takes ~0 ms; a walk index by index takes minutes. A generous bound that only a walk over
  // the length could break.
  assert.ok(ms < 2_000, `took ${ms.toFixed(0)} ms`);
});

t('host objects (MessagePort, Blob, BlockList) and SharedArrayBuffers are carried beside the bytes', () => {
  const { port1 } = new MessageChannel();
  const encoder = new Encoder();
  assert.is(encoder.put({ first: [1] }), Carrying.Nothing);
  const blob = new Blob(['x']);
  const list = new BlockList();
  assert.is(encoder.put([blob, blob]), Carrying.Cloned, 'a Blob');
  assert.is(encoder.put(list), Carrying.Cloned, 'a BlockList');
  assert.is(
    encoder.put({ port: port1 }),
    Carrying.Cloned,
    'a port (not in a transfer list: the platform refuses it when posted)',
  );
  const sab = new SharedArrayBuffer(8);
  assert.is(encoder.put({ sab, view: new Int32Array(sab, 4, 1) }), Carrying.Shared, 'a SharedArrayBuffer');
  assert.is(encoder.put({ port: port1 }, { transfer: [port1] }), Carrying.Moved, 'a port in the transfer list');
  const moved = new ArrayBuffer(4);
  assert.is(
    encoder.put({ u8: new Uint8Array(moved) }, { transfer: [moved] }),
    Carrying.Moved,
    'a buffer in the transfer list',
  );
  assert.is(
    encoder.put(1, { transfer: [new ArrayBuffer(1)] }),
    Carrying.Moved,
    'a transfer list moves even what the item does not hold',
  );
  // A value the platform refuses anyway still throws DataCloneError, host object or not.
  assert.is(throws(() => encoder.put({ f: () => 1, port: port1 }), DOMException).name, 'DataCloneError');
  const { batch } = encoder.finish();
  const [first, blobs, , , shared, , bytes] = decodeBatch(batch) as [
    unknown,
    Blob[],
    unknown,
    unknown,
    { sab: SharedArrayBuffer; view: Int32Array },
    unknown,
    { u8: Uint8Array },
  ];
  assert.equal(first, { first: [1] });
  assert.ok(blobs[0] === blob && blobs[1] === blob, 'one carried object, one slot (identity kept)');
  assert.ok(shared.sab === sab && shared.view.buffer === sab, 'a view of a carried buffer is a view of it');
  assert.ok(bytes.u8.buffer === moved);
  port1.close();
});

t('objects the encoder is told are handles are carried in slots, found at any depth', () => {
  class Handle {}
  const encoder = new Encoder({ isHandle: (v) => v instanceof Handle });
  assert.is(encoder.put({ first: [1] }), Carrying.Nothing);
  const h = new Handle();
  assert.is(encoder.put({ a: [1, { h }], again: h }), Carrying.Moved);
  const lone = encoder.takeLast(undefined);
  assert.is(lone.handles.length, 1, 'one handle, however often it appears');
  assert.ok(lone.handles[0] === h);
  assert.is(encoder.put(new Map([['also inside a Map', new Handle()]])), Carrying.Moved);
  encoder.takeLast(undefined);
  assert.is(encoder.count, 1, 'taken items leave the batch');
  assert.equal(decodeBatch(encoder.finish().batch), [{ first: [1] }]);
});

t('a getter that throws: put() throws that error and leaves the batch intact', () => {
  const boom = new Error('getter failed');
  const encoder = new Encoder();
  encoder.put({ first: 1 });
  const bad = {
    ok: [1, 2],
    get broken(): never {
      throw boom;
    },
  };
  try {
    encoder.put(bad);
    assert.unreachable('put() of an object whose getter throws');
  } catch (error) {
    assert.is(error, boom);
  }
  encoder.put({ last: [3] });
  const { batch } = encoder.finish();
  assert.equal(decodeBatch(unhinted(batch)), [{ first: 1 }, { last: [3] }]);
});

t('a batch of scalars is V8 serialization format; a batch grows past its first buffer', () => {
  const scalars = Array.from({ length: 3_000 }, (_, i) => (i % 3 === 0 ? i : i % 3 === 1 ? i / 7 : i % 2 === 0));
  const encoder = new Encoder({ capacity: 64 }); // tiny on purpose: it must grow many times
  for (const item of scalars) encoder.put(item);
  const { batch, transfer } = encoder.finish();
  assert.ok(batch.scalars);
  // Buffers of 2 KiB and more are moved; smaller ones are copied (cheaper than a transfer).
  assert.is(transfer.includes(batch.bytes), batch.bytes.byteLength >= 2 << 10);
  same(v8.deserialize(Buffer.from(batch.bytes)), structuredClone(scalars), 'v8.deserialize of the batch');
  const items = Array.from({ length: 3_000 }, (_, i) => [i, `item ${i} €`, [i, -i, i / 3], true, null]);
  for (const item of items) encoder.put(item);
  same(decodeBatch(encoder.finish().batch), structuredClone(items), 'decodeBatch');
  // A small batch moves nothing, and its few offsets are a plain array (no buffer to allocate on either side).
  encoder.put(1);
  encoder.put({ a: 2 });
  const small = encoder.finish();
  assert.equal(small.transfer, []);
  assert.ok(Array.isArray(small.batch.offsets));
  same(decodeBatch(small.batch), [1, { a: 2 }], 'decodeBatch of a small batch');
  // The encoder is reusable after finish().
  encoder.put('again');
  assert.equal(decodeBatch(encoder.finish().batch), ['again']);
});

// Found by the benchmark (queue/mpmc/object delivered "\u0000" for "z" at item 10,761): a string written where
// its length's varint made the buffer grow was written into the old buffer. Every item ends at every offset of
// a small first buffer here, so each string meets the growth once.
t('short strings written where the buffer grows arrive intact', () => {
  for (let capacity = 8; capacity <= 48; capacity++) {
    const encoder = new Encoder({ capacity });
    const items = Array.from({ length: 200 }, (_, i) => ({ i, j: 'z', k: i % 3 === 0 ? '€' : 'ab' }));
    for (const item of items) encoder.put(item);
    same(decodeBatch(encoder.finish().batch), structuredClone(items), `capacity ${capacity}`);
  }
});

// Found writing the Pool: after a batch past 1 MiB the encoder drops its big buffer for a small one, and wrote
// the next batch's header into the dropped one. A batch of scalars (read by v8.deserialize) then failed.
t('an encoder reused after a batch past 1 MiB writes a valid next batch', () => {
  const encoder = new Encoder();
  for (let round = 0; round < 3; round++) {
    const items = Array.from({ length: 300_000 }, (_, i) => i * round);
    for (const item of items) encoder.put(item);
    const { batch } = encoder.finish();
    assert.ok(batch.bytes.byteLength > 1 << 20 || round === 0);
    assert.equal(decodeBatch(batch), items, `round ${round}`);
  }
});

t('property: batches of hostile values at every first-buffer size decode as structuredClone makes them', () => {
  fc.assert(
    fc.property(
      fc.array(hostile, { minLength: 1, maxLength: 6 }),
      fc.integer({ min: 8, max: 256 }),
      (items, capacity) => {
        const encoder = new Encoder({ capacity });
        const kept: unknown[] = [];
        for (const item of items) {
          try {
            encoder.put(item);
            kept.push(item);
          } catch {
            // structuredClone refuses it too (checked by the tests above)
          }
        }
        const decoded = decodeBatch(encoder.finish().batch);
        kept.forEach((item, i) => {
          const diff = cloneDiff(decoded[i], structuredClone(item));
          if (diff !== undefined) throw new Error(`item ${i} at capacity ${capacity}: ${diff}`);
        });
      },
    ),
    { numRuns: 300, seed: 7 },
  );
});

t('objects of one shape carry their keys once per batch, and every batch names the shapes it uses', () => {
  const encoder = new Encoder();
  const items = Array.from({ length: 100 }, (_, i) => ({ id: i, name: `n${i}`, tags: [{ id: -i, name: 'inner' }] }));
  const other = { b: 1, a: 2 }; // same keys, other order: another shape
  for (const item of items) encoder.put(item);
  encoder.put(other);
  const { batch: first } = encoder.finish();
  assert.equal(first.shapes, [
    ['id', 'name', 'tags'],
    ['id', 'name'],
    ['b', 'a'],
  ]);
  assert.ok(first.bytes.byteLength < 100 * 40, `${first.bytes.byteLength} bytes: the keys were written per object`);
  same(decodeBatch(first), structuredClone([...items, other]));
  same(decodeBatch(unhinted(first)), structuredClone([...items, other]));
  // A later batch numbers its shapes afresh: a consumer may see it without the first.
  encoder.put({ b: 3, a: 4 });
  const { batch: second } = encoder.finish();
  assert.equal(second.shapes, [['b', 'a']]);
  same(new BatchReader(second).item(0), { b: 3, a: 4 });
  // Keys an object literal would not keep as written (a __proto__ key, integer-like keys) still round-trip.
  const odd = [
    JSON.parse('{"__proto__": 1, "x": 2}'),
    { 2: 'b', 1: 'a', z: 0 },
    Object.assign(Object.create(null), { k: 1 }),
    { 'a\u0000b': 1 },
    { a: 2, b: 3 },
    { '"}; throw 1; //': 4 }, // keys that could be confused when joined, or quoted badly
  ];
  same(roundTrip(odd), structuredClone(odd));
});

t('an item taken out to travel alone, or appended from one captured alone, decodes the same', () => {
  const alone = new Encoder({ shapes: false });
  const value = { a: [1, { b: 'two' }], d: new Date(3), m: new Map([[1, 2]]) };
  alone.put(value);
  const lone = alone.takeLast(undefined);
  same(decodeItem(lone.batch, 0), structuredClone(value), 'alone');
  const batch = new Encoder();
  batch.put({ before: 1 });
  batch.append(lone.batch);
  batch.put({ after: 2 });
  same(decodeBatch(batch.finish().batch), structuredClone([{ before: 1 }, value, { after: 2 }]), 'appended');
});

t('batch hints: scalars only for numbers, booleans, null and undefined; refs only with aliasing', () => {
  const hints = (items: unknown[]) => {
    const encoder = new Encoder();
    for (const item of items) encoder.put(item);
    const { refs, scalars } = encoder.finish().batch;
    return { refs, scalars };
  };
  assert.equal(hints([1, -0, NaN, 2.5, true, null, undefined]), { refs: false, scalars: true });
  assert.equal(hints([1, 'a']), { refs: false, scalars: false });
  assert.equal(hints([1, 2n]), { refs: false, scalars: false });
  assert.equal(hints([{ a: 1 }, [1]]), { refs: false, scalars: false });
  const shared = { x: 1 };
  assert.equal(hints([{ a: shared, b: shared }]), { refs: true, scalars: false });
  // Objects built from a learned shape: same keys in the same order, a plain prototype, even for odd keys.
  for (let i = 0; i < 3; i++) {
    const items = [
      { 2: 'a', 1: 'b', x: 1 },
      JSON.parse('{"__proto__": 5, "a": 1}'),
      { '': 1, 'a"b': 2, "c'd\n": 3 },
      { a: { b: {} } },
    ];
    same(roundTrip(items), structuredClone(items));
  }
});

t('shaped objects decode where code generation is off (node --disallow-code-generation-from-strings)', () => {
  const encode = fileURLToPath(new URL('../lib/wire/encode.ts', import.meta.url));
  const decode = fileURLToPath(new URL('../lib/wire/decode.ts', import.meta.url));
  const program = `
    import { Encoder } from ${JSON.stringify(encode)};
    import { BatchReader, decodeBatch } from ${JSON.stringify(decode)};
    const encoder = new Encoder();
    for (let i = 0; i < 3; i++) encoder.put({ a: i, b: { c: 'x' } });
    const { batch } = encoder.finish();
    console.log(JSON.stringify([decodeBatch(batch), new BatchReader(batch).item(2)]));`;
  const child = spawnSync(
    process.execPath,
    ['--disallow-code-generation-from-strings', '--import', 'tsx', '--input-type=module', '-e', program],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.is(child.status, 0, child.stderr);
  assert.equal(JSON.parse(child.stdout), [
    [
      { a: 0, b: { c: 'x' } },
      { a: 1, b: { c: 'x' } },
      { a: 2, b: { c: 'x' } },
    ],
    { a: 2, b: { c: 'x' } },
  ]);
});

t(
  `values up to ${kMaxDepth} levels deep round-trip; deeper ones are refused with DataCloneError in every thread`,
  () => {
    const nest = (levels: number, make: (v: unknown) => unknown) => {
      let v: unknown = 'bottom';
      for (let i = 0; i < levels; i++) v = make(v);
      return v;
    };
    for (const [what, make] of [
      ['arrays', (v: unknown) => [v]],
      ['objects', (v: unknown) => ({ a: v })],
      ['maps', (v: unknown) => new Map([[1, v]])],
    ] as const) {
      const [decoded] = roundTrip([nest(kMaxDepth, make)], false); // same() would overflow the stack
      let depth = 0;
      let v = decoded;
      for (; typeof v === 'object' && v !== null; depth++)
        v = Array.isArray(v) ? v[0] : v instanceof Map ? v.get(1) : (v as { a: unknown }).a;
      assert.is(depth, kMaxDepth, what);
      assert.is(v, 'bottom');
      const encoder = new Encoder();
      encoder.put('kept');
      for (const levels of [kMaxDepth + 1, 5_000, 50_000]) {
        const error = throws(() => encoder.put(nest(levels, make)), DOMException, `${levels} levels of ${what}`);
        assert.is(error.name, 'DataCloneError');
      }
      assert.equal(decodeBatch(encoder.finish().batch), ['kept']);
    }
  },
);

t('registered classes arrive as instances; unregistered ones as plain objects, as structured clone makes them', () => {
  class Vec {
    constructor(
      public x: number,
      public y: number,
    ) {}
    norm() {
      return Math.hypot(this.x, this.y);
    }
  }
  class Secret {
    #value: string;
    constructor(value: string) {
      this.#value = value;
    }
    reveal() {
      return this.#value;
    }
  }
  class Unregistered {
    z = 1;
  }
  registerClass(Vec);
  registerClass(Secret, {
    name: 'wire.test/Secret',
    serialize: (s) => s.reveal(),
    deserialize: (v) => new Secret(v as string),
  });
  const v = new Vec(3, 4);
  const [a, b, c, d] = roundTrip([v, { both: [v, v] }, new Secret('hidden'), new Unregistered()], false) as [
    Vec,
    { both: Vec[] },
    Secret,
    object,
  ];
  assert.ok(a instanceof Vec && a.norm() === 5, 'an instance with its methods');
  assert.ok(b.both[0] instanceof Vec && b.both[0] === b.both[1], 'identity kept');
  assert.ok(c instanceof Secret && c.reveal() === 'hidden', 'serialize/deserialize carry private state');
  assert.is(Object.getPrototypeOf(d), Object.prototype);
  assert.equal(d, { z: 1 });
  assert.throws(() => registerClass(class Vec {}), /already registered/);
  assert.throws(() => registerClass(Vec, { bogus: 1 } as never), /unknown option "bogus"/);
  // null is not an options object, as everywhere else (it was taken for none); messages name the value.
  assert.throws(
    () => registerClass(class Other {}, null as never),
    /registerClass\(\) options must be an object, got null/,
  );
  assert.throws(
    () => registerClass(class Other2 {}, { serialize: 1, deserialize: () => 0 } as never),
    /serialize must be a function, got 1/,
  );
});

t.run();
