// The oracle for round trips of hostile values: what arrives must be what structuredClone() makes of the value
// at the moment it was sent. `cloneDiff(actual, expected)` compares two object graphs structurally and with
// identity: cycles and shared references must have the same shape on both sides (a bijection between the
// objects of the two graphs), -0 is not 0, NaN is NaN, holes are not undefined, key order counts.
// It returns undefined when equal, else the path and reason of the first difference.
import fc from 'fast-check';
import { kMaxDepth } from '../../lib/wire/format.ts';

const TypedArray = Object.getPrototypeOf(Int8Array) as abstract new () => ArrayBufferView;
const tag = (x: object) => Object.prototype.toString.call(x);
const isIndex = (k: string) => /^(0|[1-9]\d*)$/.test(k) && Number(k) < 2 ** 32 - 1;

export function cloneDiff(actual: unknown, expected: unknown): string | undefined {
  const forward = new Map<object, object>();
  const backward = new Map<object, object>();
  const stack: [unknown, unknown, string][] = [[actual, expected, '$']];
  const defer = (a: unknown, e: unknown, path: string) => stack.push([a, e, path]);
  while (stack.length > 0) {
    const [a, e, path] = stack.pop()!;
    if (typeof a !== typeof e) return `${path}: ${typeof a} vs ${typeof e}`;
    if (typeof e !== 'object' || e === null || a === null) {
      if (!Object.is(a, e)) return `${path}: ${show(a)} vs ${show(e)}`;
      continue;
    }
    const ao = a as object;
    const eo = e as object;
    const mapped = forward.get(ao);
    if (mapped !== undefined) {
      if (mapped !== eo) return `${path}: aliasing differs (this object was already matched elsewhere)`;
      continue;
    }
    if (backward.has(eo)) return `${path}: aliasing differs (the expected object was already matched to another)`;
    forward.set(ao, eo);
    backward.set(eo, ao);
    if (Object.getPrototypeOf(ao) !== Object.getPrototypeOf(eo)) return `${path}: prototype ${tag(ao)} vs ${tag(eo)}`;
    if (tag(ao) !== tag(eo)) return `${path}: ${tag(ao)} vs ${tag(eo)}`;
    if (Array.isArray(eo)) {
      const aa = ao as unknown[];
      if (aa.length !== eo.length) return `${path}: length ${aa.length} vs ${eo.length}`;
      const ak = Object.keys(aa);
      const ek = Object.keys(eo);
      if (ak.length !== ek.length || ak.some((k, i) => k !== ek[i]))
        return `${path}: keys [${ak.slice(0, 8)}] vs [${ek.slice(0, 8)}] (holes or extra properties)`;
      for (const k of ek)
        defer(
          (aa as unknown as Record<string, unknown>)[k],
          (eo as unknown as Record<string, unknown>)[k],
          `${path}[${k}]`,
        );
      continue;
    }
    if (eo instanceof Map) {
      const am = ao as Map<unknown, unknown>;
      if (am.size !== eo.size) return `${path}: Map size ${am.size} vs ${eo.size}`;
      const ae = [...am];
      const ee = [...eo];
      for (let i = 0; i < ee.length; i++) {
        defer(ae[i]![1], ee[i]![1], `${path}.get#${i}`);
        defer(ae[i]![0], ee[i]![0], `${path}.key#${i}`);
      }
      continue;
    }
    if (eo instanceof Set) {
      const as = [...(ao as Set<unknown>)];
      const es = [...eo];
      if (as.length !== es.length) return `${path}: Set size ${as.length} vs ${es.length}`;
      for (let i = 0; i < es.length; i++) defer(as[i], es[i], `${path}.item#${i}`);
      continue;
    }
    if (eo instanceof ArrayBuffer) {
      const ab = ao as ArrayBuffer;
      if (ab.byteLength !== eo.byteLength) return `${path}: byteLength ${ab.byteLength} vs ${eo.byteLength}`;
      const x = new Uint8Array(ab);
      const y = new Uint8Array(eo);
      for (let i = 0; i < y.length; i++) if (x[i] !== y[i]) return `${path}: byte ${i} is ${x[i]} vs ${y[i]}`;
      continue;
    }
    if (eo instanceof TypedArray || eo instanceof DataView) {
      const av = ao as ArrayBufferView & { length?: number };
      const ev = eo as ArrayBufferView & { length?: number };
      if (av.byteOffset !== ev.byteOffset || av.byteLength !== ev.byteLength || av.length !== ev.length) {
        return `${path}: view offset/length ${av.byteOffset}/${av.byteLength} vs ${ev.byteOffset}/${ev.byteLength}`;
      }
      defer(av.buffer, ev.buffer, `${path}.buffer`);
      continue;
    }
    if (eo instanceof Date) {
      if (!Object.is((ao as Date).getTime(), eo.getTime()))
        return `${path}: Date ${(ao as Date).getTime()} vs ${eo.getTime()}`;
      continue;
    }
    if (eo instanceof RegExp) {
      const ar = ao as RegExp;
      if (ar.source !== eo.source || ar.flags !== eo.flags || ar.lastIndex !== eo.lastIndex)
        return `${path}: ${String(ar)} vs ${String(eo)}`;
      continue;
    }
    if (eo instanceof Error) {
      const ae = ao as Error;
      for (const k of ['name', 'message', 'stack'] as const)
        if (ae[k] !== eo[k]) return `${path}.${k}: ${show(ae[k])} vs ${show(eo[k])}`;
      if (Object.hasOwn(ae, 'cause') !== Object.hasOwn(eo, 'cause')) return `${path}.cause: present on one side only`;
      if (Object.hasOwn(eo, 'cause')) defer(ae.cause, eo.cause, `${path}.cause`);
      continue;
    }
    if (eo instanceof Number || eo instanceof String || eo instanceof Boolean || eo instanceof BigInt) {
      if (!Object.is((ao as { valueOf(): unknown }).valueOf(), (eo as { valueOf(): unknown }).valueOf()))
        return `${path}: boxed ${show((ao as { valueOf(): unknown }).valueOf())} vs ${show((eo as { valueOf(): unknown }).valueOf())}`;
      continue;
    }
    // Plain objects (what structuredClone makes of objects and class instances).
    const ak = Object.keys(ao);
    const ek = Object.keys(eo);
    if (ak.length !== ek.length || ak.some((k, i) => k !== ek[i]))
      return `${path}: keys [${ak.slice(0, 8)}] vs [${ek.slice(0, 8)}]`;
    for (const k of ek)
      defer(
        (ao as Record<string, unknown>)[k],
        (eo as Record<string, unknown>)[k],
        `${path}.${isIndex(k) ? `[${k}]` : k}`,
      );
  }
  return undefined;
}

function show(x: unknown): string {
  if (typeof x === 'bigint') return `${x}n`;
  if (typeof x === 'string') return JSON.stringify(x.length > 40 ? `${x.slice(0, 40)}...` : x);
  if (Object.is(x, -0)) return '-0';
  return String(x);
}

// --- arbitraries of hostile values -----------------------------------------------------------------------

class CustomError extends Error {
  override name = 'CustomError';
  extra = 42;
}

const specialNumbers = fc.constantFrom(
  -0,
  NaN,
  Infinity,
  -Infinity,
  2 ** 31,
  -(2 ** 31),
  2 ** 31 - 1,
  2 ** 53,
  -(2 ** 53),
  Number.MIN_VALUE,
  Number.MAX_VALUE,
  0.1,
  1 / 3,
);
const specialBigInts = fc.constantFrom(
  0n,
  -1n,
  2n ** 64n,
  -(2n ** 64n),
  10n ** 40n,
  BigInt(Number.MAX_SAFE_INTEGER) + 1n,
);
const keys = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.constantFrom(
    '__proto__',
    'constructor',
    'prototype',
    'length',
    '0',
    '1',
    '-0',
    '4294967295',
    '4294967294',
    '',
    ' ',
    'toString',
    '\u0000',
    '\ud800',
    '\u00ff',
  ),
);
const strings = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }), // lone surrogates included
  fc.string({ unit: 'grapheme', maxLength: 10 }),
  fc.constantFrom('\u00ff\u00fe', '\u0100', '\ud800', '\udc00x', 'é'.repeat(100), ''),
);

function errorOf(kind: number, message: string): Error {
  switch (kind % 9) {
    case 0:
      return new Error(message);
    case 1:
      return new TypeError(message);
    case 2:
      return new RangeError(message);
    case 3:
      return new SyntaxError(message);
    case 4:
      return new ReferenceError(message);
    case 5:
      return new EvalError(message);
    case 6:
      return new URIError(message);
    case 7:
      return new CustomError(message);
    default:
      return new Error(message, { cause: new RangeError(`cause of ${message}`) });
  }
}

const errors = fc.tuple(fc.nat(), fc.string({ maxLength: 10 })).map(([k, m]) => errorOf(k, m));

const typedArrays = fc.tuple(fc.nat(11), fc.nat(64), fc.nat(8), fc.nat()).map(([kind, length, offset, seed]) => {
  const ctors = [
    Int8Array,
    Uint8Array,
    Uint8ClampedArray,
    Int16Array,
    Uint16Array,
    Int32Array,
    Uint32Array,
    Float32Array,
    Float64Array,
    BigInt64Array,
    BigUint64Array,
  ] as const;
  const Ctor = ctors[kind % ctors.length]!;
  const bytes = Ctor.BYTES_PER_ELEMENT;
  const buffer = new ArrayBuffer((offset + length) * bytes + 3);
  const raw = new Uint8Array(buffer);
  for (let i = 0; i < raw.length; i++) raw[i] = (seed * 31 + i * 7) & 0xff;
  if (kind === 11) return new DataView(buffer, offset, length);
  const view = new (Ctor as unknown as new (b: ArrayBuffer, o: number, l: number) => ArrayBufferView)(
    buffer,
    offset * bytes,
    length,
  );
  // Two views over one buffer, and the buffer itself: identity must survive.
  return { view, sameBuffer: new Uint8Array(buffer, 1, 2), buffer, sliced: buffer.slice(0, 4) };
});

const sparseArrays = fc
  .tuple(fc.nat(5000), fc.array(fc.tuple(fc.nat(5000), fc.anything({ maxDepth: 1 })), { maxLength: 5 }), fc.boolean())
  .map(([length, entries, extra]) => {
    const a: unknown[] = [];
    a.length = length;
    for (const [i, v] of entries) if (i < length) a[i] = v;
    if (extra) (a as unknown as Record<string, unknown>).extra = 'prop';
    return a;
  });

/**
 * Objects nested `depth` deep, as arrays or objects alternately. Up to 1000: the main thread's structuredClone
 * overflows its stack near 2000-3000 levels (a worker's stack is 4x larger); deeper values are tested apart.
 */
// Up to the wire's nesting limit (lib/wire/format.ts: kMaxDepth), less the levels a test wraps a value in.
export const deepNesting = fc.integer({ min: 50, max: kMaxDepth - 10 }).map((depth) => {
  let v: unknown = 'bottom';
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? [v] : { d: v };
  return v;
});

const largeObjects = fc.constantFrom(10_000, 50_000).map((n) => {
  const o: Record<string, number> = {};
  for (let i = 0; i < n; i++) o[`k${i}`] = i * 1.5;
  return { o, a: Array.from({ length: n }, (_, i) => i), s: 'x'.repeat(n * 10) };
});

const miscObjects = fc.tuple(fc.anything({ maxDepth: 2 }), fc.nat()).map(([v, k]) => {
  switch (k % 8) {
    case 0:
      return JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as unknown; // own __proto__ key
    case 1: {
      const o = Object.create(null) as Record<string, unknown>;
      o.v = v;
      return o;
    }
    case 2:
      return new (class Point {
        x = 1;
        y = v;
      })();
    case 3: {
      const o = { v } as Record<string, unknown>;
      Object.defineProperty(o, 'hidden', { value: 1, enumerable: false });
      (o as Record<symbol, unknown>)[Symbol('s')] = 1;
      return o;
    }
    case 4: {
      const r = /a(b)?c/giu;
      r.lastIndex = 3;
      return { r, d: new Date(NaN), d2: new Date(8.64e15) };
    }
    case 5:
      return [Object(1n), new Number(-0), new String('boxed'), new Boolean(false)];
    case 6:
      return new Map<unknown, unknown>([
        [NaN, 1],
        [-0, 2],
        [{ k: v }, new Set([v, v])],
      ]);
    default: {
      const o = {
        get value() {
          return v;
        },
      };
      return o;
    }
  }
});

/** Adds cycles and shared references into a value: containers point back at ancestors and siblings. */
export function withCycles(value: unknown, seed: number): unknown {
  let s = seed >>> 0 || 1;
  const rnd = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  const root = { value, self: undefined as unknown, list: [] as unknown[] };
  root.self = root;
  const ancestors: object[] = [root];
  const seen = new Set<object>();
  const walk = (v: unknown, depth: number) => {
    if (typeof v !== 'object' || v === null || seen.has(v) || depth > 6 || ArrayBuffer.isView(v)) return;
    seen.add(v);
    const back = ancestors[Math.floor(rnd() * ancestors.length)]!;
    ancestors.push(v);
    if (Array.isArray(v)) {
      if (Object.isExtensible(v) && rnd() < 0.5) v.push(back);
      for (const child of [...v]) walk(child, depth + 1);
    } else if (v instanceof Map) {
      if (rnd() < 0.5) v.set(back, v);
      for (const [key, child] of [...v]) {
        walk(key, depth + 1);
        walk(child, depth + 1);
      }
    } else if (v instanceof Set) {
      if (rnd() < 0.5) v.add(back);
      for (const child of [...v]) walk(child, depth + 1);
    } else if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
      const o = v as Record<string, unknown>;
      if (rnd() < 0.5 && Object.isExtensible(o)) o[`cycle${Math.floor(rnd() * 100)}`] = back;
      for (const key of Object.keys(o)) walk(o[key], depth + 1);
    }
    ancestors.pop();
  };
  walk(value, 0);
  root.list.push(value, value, root);
  return root;
}

const anythingOptions = {
  key: keys,
  maxDepth: 4,
  maxKeys: 6,
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withTypedArray: true,
  withSparseArray: true,
};
const anything = fc.anything(anythingOptions);

/** Hostile values: fc.anything plus the special cases the issue names. */
export const hostile: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: anything, weight: 6 },
  { arbitrary: fc.tuple(anything, fc.nat()).map(([v, seed]) => withCycles(v, seed)), weight: 3 },
  { arbitrary: specialNumbers, weight: 1 },
  { arbitrary: specialBigInts, weight: 1 },
  { arbitrary: strings, weight: 1 },
  { arbitrary: errors, weight: 1 },
  { arbitrary: fc.array(errors, { maxLength: 3 }).map((list) => ({ list, nested: { e: list[0] } })), weight: 1 },
  { arbitrary: typedArrays, weight: 2 },
  { arbitrary: sparseArrays, weight: 1 },
  { arbitrary: deepNesting, weight: 1 },
  { arbitrary: miscObjects, weight: 2 },
  { arbitrary: fc.array(fc.oneof(specialNumbers, specialBigInts, strings), { maxLength: 10 }), weight: 1 },
);

/** Large values, sampled less often (they are slow to generate and to clone). */
export const large = largeObjects;

/** Changes a value in place (after it was sent) so that a later copy would differ. */
export function mutate(value: unknown): void {
  if (typeof value !== 'object' || value === null) return;
  try {
    if (Array.isArray(value)) {
      if (Object.isExtensible(value)) value.push('mutated');
    } else if (value instanceof Map) value.set('mutated', 1);
    else if (value instanceof Set) value.add('mutated');
    else if (ArrayBuffer.isView(value)) {
      if (value.byteLength > 0) new Uint8Array(value.buffer, value.byteOffset, 1)[0]! ^= 0xff;
    } else if (Object.isExtensible(value)) (value as Record<string, unknown>).mutated = true;
  } catch {
    // frozen or exotic: leave it
  }
}

/** A short, depth-limited rendering of a value for failure messages (fc.stringify overflows on deep values). */
export function preview(value: unknown, depth = 3, seen = new Set<object>()): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'string') return JSON.stringify(value.length > 30 ? `${value.slice(0, 30)}...` : value);
  if (typeof value !== 'object' || value === null) return Object.is(value, -0) ? '-0' : String(value);
  if (seen.has(value)) return '[cycle]';
  if (depth === 0) return Array.isArray(value) ? '[...]' : `${tag(value)}`;
  seen.add(value);
  try {
    if (Array.isArray(value))
      return `[${value
        .slice(0, 5)
        .map((v) => preview(v, depth - 1, seen))
        .join(', ')}${value.length > 5 ? `, ... (${value.length})` : ''}]`;
    if (value instanceof Map)
      return `Map(${value.size}) {${[...value]
        .slice(0, 3)
        .map(([k, v]) => `${preview(k, depth - 1, seen)} => ${preview(v, depth - 1, seen)}`)
        .join(', ')}}`;
    if (value instanceof Set)
      return `Set(${value.size}) {${[...value]
        .slice(0, 3)
        .map((v) => preview(v, depth - 1, seen))
        .join(', ')}}`;
    if (
      ArrayBuffer.isView(value) ||
      value instanceof ArrayBuffer ||
      value instanceof Date ||
      value instanceof RegExp ||
      value instanceof Error
    )
      return `${tag(value)}`;
    const keys = Object.keys(value);
    return `{${keys
      .slice(0, 5)
      .map((k) => `${JSON.stringify(k)}: ${preview((value as Record<string, unknown>)[k], depth - 1, seen)}`)
      .join(', ')}${keys.length > 5 ? `, ... (${keys.length} keys)` : ''}}`;
  } catch (error) {
    return `<${(error as Error).message}>`;
  }
}
