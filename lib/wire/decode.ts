// The decoder: rebuilds what encode.ts wrote (format.ts), one item at a time or a whole batch. About 2x faster
// than v8.Deserializer on small objects; a batch of scalars goes to v8.deserialize, which reads those faster.
//
// State lives in one Decoder object per decode in progress. Decoding is re-entrant: a registered class's
// deserialize() may itself take from a queue, so a decode that starts while another is under way gets a fresh
// Decoder instead of the thread's reused one. Two-byte strings are decoded by Buffer, not TextDecoder, which
// would replace lone surrogates with U+FFFD (structured clone keeps them).
import v8 from 'node:v8';
import { bug } from '../errors.ts';
import { classNamed } from './classes.ts';
import { ErrorTag, Tag, viewKinds, type Batch, type Carry } from './format.ts';

const latin1 = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i));
const kShortSlots = 1024;
/** Short strings repeat (keys, enum-like values): a decoded one is reused when the same bytes come again. */
const shortStrings: (string | undefined)[] = new Array(kShortSlots).fill(undefined);

const EMPTY_U8 = new Uint8Array(0);
const EMPTY_BUFFER = Buffer.alloc(0);
/** Object ids are kept only when a batch has back-references: otherwise nothing is pushed here. */
const NO_IDS: unknown[] = [];
const NO_CARRY: Carry = [];

interface Shape {
  keys: string[];
  make: (values: unknown[], start: number) => object;
}
const NO_SHAPES: Shape[] = [];

/** How a handle's wire record becomes a handle again (handles.ts sets it; the wire knows no handle kinds). */
let reviveHandle: (record: unknown) => unknown = () => {
  throw bug('a handle arrived before handles.ts was loaded');
};
export function setHandleReviver(reviver: (record: unknown) => unknown): void {
  reviveHandle = reviver;
}

const errorConstructors: Record<number, ErrorConstructor> = {
  [ErrorTag.EvalError]: EvalError,
  [ErrorTag.RangeError]: RangeError,
  [ErrorTag.ReferenceError]: ReferenceError,
  [ErrorTag.SyntaxError]: SyntaxError,
  [ErrorTag.TypeError]: TypeError,
  [ErrorTag.URIError]: URIError,
};

class Decoder {
  u8: Uint8Array = EMPTY_U8;
  buf: Buffer = EMPTY_BUFFER;
  p = 0;
  refs = false;
  ids: unknown[] = NO_IDS;
  shapes: Shape[] = NO_SHAPES;
  carry: Carry = NO_CARRY;
  /** Handles revived in this item, by carry slot: one appearing twice in a value is one handle. */
  revived: unknown[] | null = null;
  busy = false;
  // A shaped object's values sit on a stack (sv, from st up) until the last is read, then its shape's function
  // builds it in one step (an object literal: one hidden class, no keyed stores).
  readonly sv: unknown[] = [];
  st = 0;
  svUsed = 0;

  start(
    u8: Uint8Array,
    buffer: Buffer,
    offset: number,
    refs: boolean,
    shapes: Shape[],
    carry: Carry | undefined,
  ): void {
    this.busy = true;
    this.u8 = u8;
    this.buf = buffer;
    this.p = offset;
    this.refs = refs;
    this.ids = refs ? [] : NO_IDS;
    this.shapes = shapes;
    this.carry = carry ?? NO_CARRY;
  }

  /** Lets go of the batch and of every value decoded, so that nothing outlives the call here. */
  end(): void {
    this.u8 = EMPTY_U8;
    this.buf = EMPTY_BUFFER;
    this.ids = NO_IDS;
    this.shapes = NO_SHAPES;
    this.carry = NO_CARRY;
    this.revived = null;
    // A loop, not sv.fill(): a builtin call costs more at the usual size (one object's values).
    const sv = this.sv;
    for (let i = 0; i < this.svUsed; i++) sv[i] = undefined;
    this.svUsed = 0;
    this.st = 0;
    this.busy = false;
  }

  varint(): number {
    const u8 = this.u8;
    let b = u8[this.p++]!;
    if (b < 0x80) return b;
    // Up to four bytes in int32 arithmetic (28 bits: always positive); beyond, in doubles.
    let v = b & 0x7f;
    b = u8[this.p++]!;
    v |= (b & 0x7f) << 7;
    if (b < 0x80) return v;
    b = u8[this.p++]!;
    v |= (b & 0x7f) << 14;
    if (b < 0x80) return v;
    b = u8[this.p++]!;
    v |= (b & 0x7f) << 21;
    if (b < 0x80) return v;
    let shift = 28;
    do {
      b = u8[this.p++]!;
      v += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    return v;
  }

  latin1(length: number): string {
    const u8 = this.u8;
    const p = this.p;
    if (length === 1) {
      this.p = p + 1;
      return latin1[u8[p]!]!;
    }
    if (length <= 16) {
      const slot = (length * 31 + u8[p]! * 7 + u8[p + length - 1]! * 131) & (kShortSlots - 1);
      let s = shortStrings[slot];
      if (s !== undefined && s.length === length) {
        let i = 0;
        while (i < length && s.charCodeAt(i) === u8[p + i]) i++;
        if (i === length) {
          this.p = p + length;
          return s;
        }
      }
      s = '';
      for (let i = 0; i < length; i++) s += latin1[u8[p + i]!]!;
      shortStrings[slot] = s;
      this.p = p + length;
      return s;
    }
    this.p = p + length;
    return this.buf.toString('latin1', p, p + length);
  }

  string(): string {
    const tag = this.u8[this.p++];
    if (tag === Tag.OneByteString) return this.latin1(this.varint());
    if (tag === Tag.TwoByteString) {
      const n = this.varint();
      const s = this.buf.toString('utf16le', this.p, this.p + n);
      this.p += n;
      return s;
    }
    throw bug(`wire: expected a string at ${this.p - 1}`);
  }

  double(): number {
    const x = this.buf.readDoubleLE(this.p);
    this.p += 8;
    return x;
  }

  bigint(): bigint {
    const negative = this.u8[this.p++] === 1;
    const length = this.varint();
    let hex = '';
    for (let i = length - 1; i >= 0; i--)
      hex += (this.u8[this.p + i]! < 16 ? '0' : '') + this.u8[this.p + i]!.toString(16);
    this.p += length;
    const magnitude = length === 0 ? 0n : BigInt(`0x${hex}`);
    return negative ? -magnitude : magnitude;
  }

  /** Reserves the next object id for an object made only after its parts are read. */
  reserve(): number {
    if (!this.refs) return -1;
    this.ids.push(undefined);
    return this.ids.length - 1;
  }

  read(): unknown {
    const u8 = this.u8;
    const tag = u8[this.p++];
    switch (tag) {
      case Tag.Int32: {
        const z = this.varint();
        return (z >>> 1) ^ -(z & 1);
      }
      case Tag.OneByteString:
        return this.latin1(this.varint());
      case Tag.TwoByteString: {
        const n = this.varint();
        const s = this.buf.toString('utf16le', this.p, this.p + n);
        this.p += n;
        return s;
      }
      case Tag.Double:
        return this.double();
      case Tag.True:
        return true;
      case Tag.False:
        return false;
      case Tag.Null:
        return null;
      case Tag.Undefined:
        return undefined;
      case Tag.ShapedObject:
        return this.shaped();
      case Tag.BeginObject: {
        // Objects the encoder does not shape: empty, over kShapeMaxKeys keys, a __proto__ key, or past its limit.
        const o: Record<string, unknown> = {};
        if (this.refs) this.ids.push(o);
        this.properties(o, Tag.EndObject);
        return o;
      }
      case Tag.BeginDenseArray: {
        const length = this.varint();
        const a: unknown[] = [];
        if (this.refs) this.ids.push(a);
        for (let i = 0; i < length; i++) {
          if (u8[this.p] === Tag.Hole) {
            this.p++;
            a.length = i + 1;
          } else a.push(this.read());
        }
        this.p++; // EndDenseArray
        this.varint();
        this.varint();
        return a;
      }
      case Tag.BeginSparseArray: {
        const a: unknown[] = new Array(this.varint());
        if (this.refs) this.ids.push(a);
        this.properties(a as unknown as Record<string, unknown>, Tag.EndSparseArray);
        this.varint();
        return a;
      }
      case Tag.ObjectReference:
        return this.ids[this.varint()];
      case Tag.BigInt:
        return this.bigint();
      case Tag.Date:
        return this.remember(new Date(this.double()));
      case Tag.RegExp: {
        const id = this.reserve();
        const source = this.string();
        return this.fill(id, new RegExp(source, this.string()));
      }
      case Tag.TrueObject:
        return this.remember(Object(true));
      case Tag.FalseObject:
        return this.remember(Object(false));
      case Tag.NumberObject:
        return this.remember(Object(this.double()));
      case Tag.StringObject: {
        const id = this.reserve();
        return this.fill(id, Object(this.string()));
      }
      case Tag.BigIntObject: {
        const id = this.reserve();
        return this.fill(id, Object(this.bigint()));
      }
      case Tag.BeginMap: {
        const m = new Map<unknown, unknown>();
        if (this.refs) this.ids.push(m);
        while (u8[this.p] !== Tag.EndMap) {
          const k = this.read();
          m.set(k, this.read());
        }
        this.p++;
        this.varint();
        return m;
      }
      case Tag.BeginSet: {
        const s = new Set<unknown>();
        if (this.refs) this.ids.push(s);
        while (u8[this.p] !== Tag.EndSet) s.add(this.read());
        this.p++;
        this.varint();
        return s;
      }
      case Tag.ArrayBuffer: {
        const length = this.varint();
        const buffer = this.u8.buffer.slice(
          this.u8.byteOffset + this.p,
          this.u8.byteOffset + this.p + length,
        ) as ArrayBuffer;
        this.p += length;
        return this.remember(buffer);
      }
      case Tag.View:
        return this.view();
      case Tag.Error:
        return this.error();
      case Tag.Instance:
        return this.instance();
      case Tag.Carried:
        return this.carry[this.varint()];
      case Tag.Handle: {
        const k = this.varint();
        const revived = (this.revived ??= []);
        return k in revived ? revived[k] : (revived[k] = reviveHandle(this.carry[k]));
      }
      default:
        throw bug(`wire: unexpected tag 0x${tag?.toString(16)} at ${this.p - 1}`);
    }
  }

  remember<T>(o: T): T {
    if (this.refs) this.ids.push(o);
    return o;
  }

  fill<T>(id: number, o: T): T {
    if (id >= 0) this.ids[id] = o;
    return o;
  }

  /** Reads (key value)* up to `end` into `o`, then the count. */
  properties(o: Record<string, unknown>, end: number): void {
    const u8 = this.u8;
    while (u8[this.p] !== end) {
      let key: string;
      if (u8[this.p] === Tag.OneByteString) {
        this.p++;
        key = this.latin1(this.varint());
      } else key = this.string();
      const v = this.read();
      if (key === '__proto__')
        Object.defineProperty(o, key, { value: v, writable: true, enumerable: true, configurable: true });
      else o[key] = v;
    }
    this.p++;
    this.varint();
  }

  shaped(): object {
    const shape = this.shapes[this.varint()];
    if (shape === undefined) throw bug(`wire: unknown shape at ${this.p}`);
    const keys = shape.keys;
    const n = keys.length;
    const u8 = this.u8;
    if (this.refs) {
      // Registered before its values are read: one of them may refer back to it.
      const o: Record<string, unknown> = {};
      this.ids.push(o);
      for (let i = 0; i < n; i++) {
        if (u8[this.p] === Tag.Absent) {
          this.p++;
          continue;
        }
        o[keys[i]!] = this.read();
      }
      return o;
    }
    const sv = this.sv;
    const start = this.st;
    this.st += n;
    if (this.st > this.svUsed) this.svUsed = this.st;
    let absent = false;
    for (let i = 0; i < n; i++) {
      if (u8[this.p] === Tag.Absent) {
        this.p++;
        sv[start + i] = kAbsent;
        absent = true;
      } else sv[start + i] = this.read();
    }
    this.st = start;
    if (!absent) return shape.make(sv, start);
    const o: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) if (sv[start + i] !== kAbsent) o[keys[i]!] = sv[start + i];
    return o;
  }

  view(): ArrayBufferView {
    const Kind = viewKinds[this.u8[this.p++]!];
    if (Kind === undefined) throw bug(`wire: unknown view kind at ${this.p - 1}`);
    const byteOffset = this.varint();
    const byteLength = this.varint();
    const id = this.reserve();
    const buffer = this.read() as ArrayBuffer;
    const view =
      Kind === DataView
        ? new DataView(buffer, byteOffset, byteLength)
        : new (Kind as Uint8ArrayConstructor)(
            buffer,
            byteOffset,
            byteLength / (Kind as Uint8ArrayConstructor).BYTES_PER_ELEMENT,
          );
    return this.fill(id, view);
  }

  error(): Error {
    const u8 = this.u8;
    const id = this.reserve();
    let Ctor: ErrorConstructor = Error;
    let message: string | undefined;
    let stack: string | undefined;
    for (;;) {
      const tag = u8[this.p++]!;
      if (tag === ErrorTag.Message) message = this.string();
      else if (tag === ErrorTag.Stack) stack = this.string();
      else if (tag === ErrorTag.Cause || tag === ErrorTag.End) {
        // Made now, before its cause is read: the cause may refer back to it.
        const limit = Error.stackTraceLimit;
        Error.stackTraceLimit = 0;
        const error = new Ctor();
        Error.stackTraceLimit = limit;
        if (message !== undefined)
          Object.defineProperty(error, 'message', {
            value: message,
            writable: true,
            enumerable: false,
            configurable: true,
          });
        if (stack !== undefined)
          Object.defineProperty(error, 'stack', {
            value: stack,
            writable: true,
            enumerable: false,
            configurable: true,
          });
        else delete (error as { stack?: string }).stack;
        this.fill(id, error);
        if (tag === ErrorTag.Cause) {
          Object.defineProperty(error, 'cause', {
            value: this.read(),
            writable: true,
            enumerable: false,
            configurable: true,
          });
          this.p++; // End
        }
        return error;
      } else if (Object.hasOwn(errorConstructors, tag)) Ctor = errorConstructors[tag]!;
      else throw bug(`wire: unexpected error tag 0x${tag.toString(16)} at ${this.p - 1}`);
    }
  }

  instance(): object {
    const name = this.string();
    const registered = classNamed(name);
    if (this.u8[this.p] === Tag.CustomData) {
      this.p++;
      const id = this.reserve();
      const data = this.read();
      return this.fill(id, registered?.deserialize !== undefined ? registered.deserialize(data) : (data as object));
    }
    this.p++; // BeginObject
    const o = (registered === undefined ? {} : Object.create(registered.prototype)) as Record<string, unknown>;
    if (this.refs) this.ids.push(o);
    this.properties(o, Tag.EndObject);
    return o;
  }
}

const kAbsent: unique symbol = Symbol('absent');

/** The thread's decoder, reused; a decode that starts while it is busy (re-entrance) gets its own. */
const shared = new Decoder();
function decoder(): Decoder {
  return shared.busy ? new Decoder() : shared;
}

// The shapes batches name, with their object-literal functions, by their keys (JSON).
const kShapesKept = 4096;
const shapesByKeys = new Map<string, Shape>();

/** A function that builds an object with `keys` from values[start...] (an object literal: one hidden class). */
function objectMaker(keys: string[]): Shape['make'] {
  const body = keys.map((k, i) => `${JSON.stringify(k)}: v[s + ${i}]`).join(', ');
  try {
    return new Function('v', 's', `return { ${body} };`) as Shape['make'];
  } catch {
    // Code generation is off (node --disallow-code-generation-from-strings): build the object key by key.
    return (v, s) => {
      const o: Record<string, unknown> = {};
      for (let i = 0; i < keys.length; i++) o[keys[i]!] = v[s + i];
      return o;
    };
  }
}

function shapesOf(batch: Batch): Shape[] {
  const lists = batch.shapes;
  if (lists === undefined) return NO_SHAPES;
  return lists.map((keys) => {
    const id = JSON.stringify(keys); // unambiguous, whatever the keys contain
    let shape = shapesByKeys.get(id);
    if (shape === undefined) {
      shape = { keys, make: objectMaker(keys) };
      if (shapesByKeys.size < kShapesKept) shapesByKeys.set(id, shape);
    }
    return shape;
  });
}

/**
 * Decodes the items of a batch one at a time, on demand: a consumer that shares a stream with others decodes
 * only the items it takes. A batch of scalars is decoded whole by V8 at the first access.
 */
export class BatchReader {
  readonly #batch: Batch;
  #all: unknown[] | undefined;
  #buffer: Buffer | undefined;
  #shapes: Shape[] | undefined;

  constructor(batch: Batch) {
    this.#batch = batch;
  }

  item(i: number): unknown {
    if (this.#all !== undefined) return this.#all[i];
    const batch = this.#batch;
    if (batch.scalars) {
      this.#all = v8.deserialize(Buffer.from(batch.bytes)) as unknown[];
      return this.#all[i];
    }
    this.#buffer ??= Buffer.from(batch.bytes);
    this.#shapes ??= shapesOf(batch);
    return decodeAt(batch, this.#buffer, this.#shapes, i);
  }
}

function decodeAt(batch: Batch, buffer: Buffer, shapes: Shape[], i: number): unknown {
  const d = decoder();
  d.start(new Uint8Array(batch.bytes), buffer, batch.offsets[i]!, batch.refs, shapes, batch.carry?.[i]);
  try {
    return d.read();
  } finally {
    d.end();
  }
}

/**
 * Decodes a batch of one item, carrying nothing and without shapes, whose bytes are in `u8` from 0 (`buffer`
 * over the same memory): the hand-off ring's items, decoded where they were copied to.
 */
export function decodeLone(u8: Uint8Array, buffer: Buffer, refs: boolean): unknown {
  const d = decoder();
  d.start(u8, buffer, 8, refs, NO_SHAPES, undefined);
  try {
    return d.read();
  } finally {
    d.end();
  }
}

/** Decodes item `i` of a batch. */
export function decodeItem(batch: Batch, i: number): unknown {
  if (batch.scalars) return (v8.deserialize(Buffer.from(batch.bytes)) as unknown[])[i];
  return decodeAt(batch, Buffer.from(batch.bytes), shapesOf(batch), i);
}

/** Decodes every item of a batch. */
export function decodeBatch(batch: Batch): unknown[] {
  if (batch.scalars) return v8.deserialize(Buffer.from(batch.bytes)) as unknown[];
  const buffer = Buffer.from(batch.bytes);
  const shapes = shapesOf(batch);
  const items = new Array<unknown>(batch.n);
  for (let i = 0; i < batch.n; i++) items[i] = decodeAt(batch, buffer, shapes, i);
  return items;
}
