// The encoder: captures values at the call (put, send, Process args) in one walk that reads each property
// once, as structured clone does, into the format of format.ts. Plain data, arrays, Dates, Maps, Sets, binary
// data, errors and registered classes are written here; what only the platform can copy (host objects such as
// Blob, transferred buffers and ports, SharedArrayBuffers) is carried beside the bytes and cloned by
// postMessage with the item; mpthreads handles (queues, connections) are carried as wire records.
//
// Why not a v8.Serializer per batch: it shares its object-identity map across items, so an object put twice in
// one batch arrives as the *same, stale* object; a failed writeValue leaves bytes it cannot take back; and it
// cannot find our handles. Why not structuredClone() or v8.serialize() per item: 3-10x slower.
//
// Invariants:
//   #u8[0..#pos) is a header, the tag of a dense array with a 5-byte length (patched by finish()), then #n
//     complete items; #offsets[i] is where item i starts.
//   Item state (#seen, #nextId, #depth, #itemCarry, #handles, #transfer) is reset by every put(); a put that
//     throws leaves the batch exactly as it was.
//   A shaped object's number indexes this batch's #shapeKeys; a shape gets its number in a batch the first time
//     it is written there (KnownShape.batch is that batch's #batchNumber).
import v8 from 'node:v8';
import { types } from 'node:util';
import { bug } from '../errors.ts';
import { itemBytes, wrapItem, wrappedLength, writeWrapped } from './batch.ts';
import { Carrying, ErrorTag, kMaxDepth, kShapeMaxKeys, Tag, type Batch, type Carry } from './format.ts';
import {
  ArrayProto,
  dataCloneError,
  isProxy,
  ObjectProto,
  refusePlainExotic,
  Special,
  specialKind,
  uncloneable,
} from './kinds.ts';

const HEADER = v8.serialize(undefined).subarray(0, 2); // 0xff, format version
if (HEADER[0] !== 0xff) throw new Error('mpthreads: unexpected V8 serialization header');

/**
 * Binary data at least this large is carried beside the bytes, for the platform to copy once, rather than
 * copied into the encoding (and again out of it).
 */
export const kCarryBytes = 64 << 10;
/** Shapes an encoder learns, at most: objects used as maps (keys that never repeat) must not fill memory. */
const kShapesPerEncoder = 512;
/** A finished batch's buffers at least this large are moved (transferred) rather than copied. */
const kMoveBytes = 2 << 10;
/** Batches of at most this many items carry their offsets as a plain array. */
const kArrayOffsets = 16;
/** The first buffer of an encoder that has not been told otherwise; it grows as needed. */
const kInitialCapacity = 1 << 12;

interface KnownShape {
  keys: string[];
  /** The batch (#batchNumber) in which `number` was given, and the number. */
  batch: number;
  number: number;
}

/** Same keys in the same order (property keys are internalized: comparing them is comparing pointers). */
function sameKeys(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const f64 = new Float64Array(1);
const f64u8 = new Uint8Array(f64.buffer);
const { isNumberObject, isStringObject, isBooleanObject, isBigIntObject } = types;

/** The kind byte of a view (format.ts's viewKinds), by its toStringTag (a Buffer reports Uint8Array). */
const typedArrayTag = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), Symbol.toStringTag)!
  .get!;
const kindOfTag = new Map<string | undefined, number>([
  ['Int8Array', 0],
  ['Uint8Array', 1],
  ['Uint8ClampedArray', 2],
  ['Int16Array', 3],
  ['Uint16Array', 4],
  ['Int32Array', 5],
  ['Uint32Array', 6],
  ['Float32Array', 7],
  ['Float64Array', 8],
  ['BigInt64Array', 9],
  ['BigUint64Array', 10],
]);
const kDataViewKind = 11;

/** The prototype sub-tag V8 writes for an error, by its `name` (others are written as Error). */
const errorTags: Record<string, number> = {
  EvalError: ErrorTag.EvalError,
  RangeError: ErrorTag.RangeError,
  ReferenceError: ErrorTag.ReferenceError,
  SyntaxError: ErrorTag.SyntaxError,
  TypeError: ErrorTag.TypeError,
  URIError: ErrorTag.URIError,
};

/** Options of put(). */
export interface PutOptions {
  /** Buffers and ports to move with the item (postMessage's transfer list): they are carried, not copied. */
  transfer?: readonly unknown[] | undefined;
}

/** An item taken out of the batch to travel alone (it moves things, or holds objects the platform must clone). */
export interface LoneItem {
  batch: Batch;
  /** Everything to transfer with it: the caller's transfer list, and the batch's own buffers. */
  transfer: unknown[];
  /** The handles it holds, and the carry slot each one's wire record goes in once it is marshalled. */
  handles: object[];
  handleSlots: number[];
  carrying: Carrying;
}

export class Encoder {
  #u8: Uint8Array;
  #pos = 0;
  #n = 0;
  /** Where each item of the batch starts in #u8. */
  #offsets = new Uint32Array(64);
  /** Some item refers back to one of its objects: decode the batch keeping object ids. */
  #refs = false;
  /** Only numbers, booleans, null and undefined so far: V8's own deserializer reads those ~4x faster than ours. */
  #scalars = true;
  #batchCarry: (Carry | undefined)[] | null = null;
  /** Shapes learned so far, by first key. */
  #known = new Map<string, KnownShape[]>();
  #knownCount = 0;
  #lastShape: KnownShape | undefined;
  #batchNumber = 0;
  /** The keys of each shape this batch uses, by shape number. */
  #shapeKeys: string[][] = [];
  /** False: write every object with its keys (a value that travels alone gains nothing from shapes). */
  readonly #useShapes: boolean;
  readonly #isHandle: ((value: object) => boolean) | undefined;
  /** Big ArrayBuffers are written into the bytes too (the item leaves the process: nothing can be carried). */
  readonly #inlineBuffers: boolean;

  // The item being written.
  /**
   * The objects of the item being put, in id order, up to #seenCount (the rest are undefined): an array kept
   * across items, since emptying it by its length frees its storage, and every item then paid ~150 bytes for
   * a new one.
   */
  #seen: (object | undefined)[] = [];
  #seenCount = 0;
  #seenMap: Map<object, number> | null = null;
  #nextId = 0;
  #depth = 0;
  #itemCarry: Carry | null = null;
  #carryIndex: Map<unknown, number> | null = null;
  #carrying: Carrying = Carrying.Nothing;
  #handles: object[] = [];
  #handleSlots: number[] = [];
  #transfer: ReadonlySet<unknown> | null = null;

  /**
   * `isHandle`: objects written as handles (Tag.Handle), to be marshalled by the caller once the item is
   * written; `shapes` false: write objects with their keys; `inlineBuffers`: write ArrayBuffers of any size
   * into the bytes, not beside them (for an item that leaves the process).
   */
  constructor(
    options: {
      capacity?: number;
      isHandle?: (value: object) => boolean;
      shapes?: boolean;
      inlineBuffers?: boolean;
    } = {},
  ) {
    this.#u8 = new Uint8Array(options.capacity ?? kInitialCapacity);
    this.#isHandle = options.isHandle;
    this.#useShapes = options.shapes ?? true;
    this.#inlineBuffers = options.inlineBuffers ?? false;
    this.#reset();
  }

  get count(): number {
    return this.#n;
  }

  /** Bytes written so far: the encoding (carried objects aside). */
  get byteLength(): number {
    return this.#pos;
  }

  /**
   * Captures `value` as the next item and returns what it carries beside its bytes (Carrying). Throws what
   * structured clone would (DataCloneError, or what a getter threw) and adds nothing.
   */
  put(value: unknown, options?: PutOptions): Carrying {
    const pos = this.#pos;
    const scalars = this.#scalars;
    const refs = this.#refs;
    this.#nextId = 0;
    this.#depth = 0;
    this.#carrying = Carrying.Nothing;
    const transfer = options?.transfer;
    this.#transfer = transfer !== undefined && transfer.length > 0 ? new Set(transfer) : null;
    try {
      this.#value(value);
    } catch (error) {
      this.#pos = pos;
      this.#scalars = scalars;
      this.#refs = refs;
      this.#endItem();
      // The encoder recurses once per level: a value deep enough to overflow this thread's stack before
      // kMaxDepth is too deep for this thread to send, and for most to rebuild.
      if (error instanceof RangeError && /call stack/i.test(error.message))
        throw dataCloneError('the value is nested too deeply to be cloned.');
      throw error;
    }
    if (this.#n === this.#offsets.length) {
      const grown = new Uint32Array(2 * this.#n);
      grown.set(this.#offsets);
      this.#offsets = grown;
    }
    this.#offsets[this.#n] = pos;
    if (this.#itemCarry !== null) (this.#batchCarry ??= [])[this.#n] = this.#itemCarry;
    this.#n++;
    // A transfer list moves (detaches) everything in it, whether the item refers to it or not.
    if (this.#transfer !== null) this.#carrying = Carrying.Moved;
    const carrying = this.#carrying;
    if (carrying < Carrying.Cloned) this.#endItem();
    return carrying;
  }

  /**
   * Takes the item just put (whose put() returned Cloned or Moved) out of the batch, to travel alone.
   * `transfer` is the caller's transfer list for it.
   */
  takeLast(transfer: readonly unknown[] | undefined): LoneItem {
    const i = this.#n - 1;
    const start = this.#offsets[i]!;
    const carry = this.#batchCarry?.[i];
    const batch: Batch = {
      n: 1,
      bytes: wrapItem(this.#u8.subarray(0, 2), this.#u8.subarray(start, this.#pos)),
      offsets: [8],
      refs: this.#refs,
      scalars: false,
    };
    if (this.#shapeKeys.length > 0) batch.shapes = this.#shapeKeys.slice();
    if (carry !== undefined) batch.carry = [carry];
    const lone: LoneItem = {
      batch,
      transfer: [batch.bytes, ...(transfer ?? [])],
      handles: this.#handles,
      handleSlots: this.#handleSlots,
      carrying: this.#carrying,
    };
    // The batch as it was before this item.
    this.#pos = start;
    this.#n = i;
    if (this.#batchCarry !== null) this.#batchCarry.length = i;
    this.#handles = [];
    this.#handleSlots = [];
    this.#endItem();
    return lone;
  }

  /** Some item so far refers back to one of its objects: the batch must be decoded keeping object ids. */
  get refs(): boolean {
    return this.#refs;
  }

  /** The byte length of the item just put, as a batch of its own (what takeLast() would make of it). */
  get lastLength(): number {
    return wrappedLength(this.#pos - this.#offsets[this.#n - 1]!);
  }

  /**
   * Writes the item just put (whose put() returned Nothing, in an encoder without shapes) into `into` at `at`,
   * as a batch of its own, and takes it out of the batch: takeLast() without a buffer of its own.
   */
  moveLastInto(into: Uint8Array, at: number): void {
    const i = this.#n - 1;
    const start = this.#offsets[i]!;
    if (this.#shapeKeys.length > 0 || this.#batchCarry?.[i] !== undefined)
      throw bug('wire: moveLastInto() of an item that needs more than its bytes');
    writeWrapped(into, at, this.#u8, start, this.#pos);
    this.#pos = start;
    this.#n = i;
    if (this.#batchCarry !== null) this.#batchCarry.length = i;
  }

  /**
   * Appends an item captured alone earlier (a batch of one from an encoder made with `shapes: false`, whose
   * put() returned Nothing or Shared): its bytes are copied in as they are.
   */
  append(lone: Batch): void {
    if (lone.n !== 1 || lone.shapes !== undefined) throw bug('wire: append() takes one item captured without shapes');
    const item = itemBytes(lone, 0);
    this.#ensure(item.length);
    if (this.#n === this.#offsets.length) {
      const grown = new Uint32Array(2 * this.#n);
      grown.set(this.#offsets);
      this.#offsets = grown;
    }
    this.#offsets[this.#n] = this.#pos;
    this.#u8.set(item, this.#pos);
    this.#pos += item.length;
    const carry = lone.carry?.[0];
    if (carry !== undefined) (this.#batchCarry ??= [])[this.#n] = carry;
    this.#refs ||= lone.refs;
    this.#scalars &&= lone.scalars;
    this.#n++;
  }

  /** Seals the batch and starts a new one. `transfer` lists its buffers. */
  finish(): { batch: Batch; transfer: ArrayBuffer[] } {
    const u8 = this.#u8;
    let n = this.#n;
    for (let i = 3; i < 7; i++) {
      u8[i] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    u8[7] = n;
    this.#ensure(11);
    this.#u8[this.#pos++] = Tag.EndDenseArray;
    this.#varint(0);
    this.#varint(this.#n);
    const bytes = this.#u8.slice(0, this.#pos).buffer;
    // A few offsets travel as a plain array, and small buffers are copied rather than moved: each ArrayBuffer
    // in a message costs an allocation on both sides, and a transfer costs more than a small copy (2026-12-03:
    // a hub round trip of one int, 4 posts, took 50 µs with two small buffers, 46 with one; a batch of 1,024
    // ints, about 5 KiB, went faster moved than copied).
    const offsets =
      this.#n <= kArrayOffsets ? Array.from(this.#offsets.subarray(0, this.#n)) : this.#offsets.slice(0, this.#n);
    const batch: Batch = { n: this.#n, bytes, offsets, refs: this.#refs, scalars: this.#scalars };
    if (this.#shapeKeys.length > 0) batch.shapes = this.#shapeKeys;
    if (this.#batchCarry !== null) batch.carry = this.#batchCarry;
    this.#reset();
    const transfer: ArrayBuffer[] = [];
    if (bytes.byteLength >= kMoveBytes) transfer.push(bytes);
    if (offsets instanceof Uint32Array && offsets.byteLength >= kMoveBytes) transfer.push(offsets.buffer);
    return { batch, transfer };
  }

  #reset(): void {
    // A big batch's buffer is not kept (an idle holder of a queue should not hold megabytes): replaced before
    // the next batch's header is written into it.
    if (this.#u8.length > 1 << 20) this.#u8 = new Uint8Array(kInitialCapacity);
    const u8 = this.#u8;
    u8[0] = HEADER[0]!;
    u8[1] = HEADER[1]!;
    u8[2] = Tag.BeginDenseArray; // length: a 5-byte varint at 3..7, patched by finish()
    this.#pos = 8;
    this.#n = 0;
    this.#refs = false;
    this.#scalars = true;
    this.#batchCarry = null;
    this.#batchNumber++;
    this.#shapeKeys = [];
  }

  #endItem(): void {
    const seen = this.#seen;
    for (let i = 0; i < this.#seenCount; i++) seen[i] = undefined; // holds nothing of the item past its put
    this.#seenCount = 0;
    this.#seenMap = null;
    this.#itemCarry = null;
    this.#carryIndex = null;
    this.#transfer = null;
    if (this.#handles.length > 0) {
      this.#handles = [];
      this.#handleSlots = [];
    }
  }

  /** The shape of an object with `keys` (1 to kShapeMaxKeys of them), numbered in this batch; or undefined. */
  #shapeOf(keys: string[]): KnownShape | undefined {
    const first = keys[0]!;
    // Most items are the shape of the one before: try that first, without the map.
    const last = this.#lastShape;
    let shape = last !== undefined && sameKeys(last.keys, keys) ? last : undefined;
    const candidates = shape === undefined ? this.#known.get(first) : undefined;
    if (candidates !== undefined) {
      for (let c = 0; c < candidates.length && shape === undefined; c++) {
        if (sameKeys(candidates[c]!.keys, keys)) shape = candidates[c];
      }
    }
    if (shape === undefined) {
      // An object literal with a __proto__ key would set the prototype instead.
      if (this.#knownCount >= kShapesPerEncoder || keys.includes('__proto__')) return undefined;
      shape = { keys, batch: 0, number: 0 };
      if (candidates === undefined) this.#known.set(first, [shape]);
      else candidates.push(shape);
      this.#knownCount++;
    }
    this.#lastShape = shape;
    if (shape.batch !== this.#batchNumber) {
      shape.batch = this.#batchNumber;
      shape.number = this.#shapeKeys.length;
      this.#shapeKeys.push(shape.keys);
    }
    return shape;
  }

  #ensure(k: number): void {
    if (this.#pos + k <= this.#u8.length) return;
    // Doubling, but a big write gets just the room it needs (a 64 MiB string must not make a 128 MiB buffer).
    const capacity = Math.max(this.#u8.length * 2, this.#pos + k + (k > 1 << 20 ? 0 : this.#u8.length));
    const grown = new Uint8Array(capacity);
    grown.set(this.#u8.subarray(0, this.#pos));
    this.#u8 = grown;
  }

  #byte(b: number): void {
    this.#ensure(1);
    this.#u8[this.#pos++] = b;
  }

  #varint(v: number): void {
    this.#ensure(10);
    this.#putVarint(v);
  }

  /** Writes a varint where the caller has made room (at most 10 bytes; 5 below 2^35). */
  #putVarint(v: number): void {
    const u8 = this.#u8;
    let p = this.#pos;
    if (v < 0x80000000) {
      while (v >= 0x80) {
        u8[p++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
    } else {
      while (v >= 0x80) {
        u8[p++] = (v % 0x80) | 0x80;
        v = Math.floor(v / 0x80);
      }
    }
    u8[p++] = v;
    this.#pos = p;
  }

  #string(s: string): void {
    const length = s.length;
    // Room for the tag, a length varint and the longest encoding, made once: nothing below may grow the buffer,
    // since `u8` is held across the writes (a string's length is below 2^30: its varints take at most 5 bytes).
    this.#ensure(11 + 2 * length);
    const u8 = this.#u8;
    const start = this.#pos;
    u8[start] = Tag.OneByteString;
    this.#pos = start + 1;
    this.#putVarint(length);
    const p = this.#pos;
    let i = 0;
    for (; i < length; i++) {
      const c = s.charCodeAt(i);
      if (c > 0xff) break;
      u8[p + i] = c;
    }
    if (i === length) {
      this.#pos = p + length;
      return;
    }
    u8[start] = Tag.TwoByteString; // not Latin-1: rewrite as UTF-16LE
    this.#pos = start + 1;
    this.#putVarint(2 * length);
    let q = this.#pos;
    for (i = 0; i < length; i++) {
      const c = s.charCodeAt(i);
      u8[q++] = c & 0xff;
      u8[q++] = c >>> 8;
    }
    this.#pos = q;
  }

  #double(x: number): void {
    this.#ensure(8);
    const u8 = this.#u8;
    let p = this.#pos;
    f64[0] = x;
    for (let i = 0; i < 8; i++) u8[p++] = f64u8[i]!;
    this.#pos = p;
  }

  #number(x: number): void {
    if ((x | 0) === x && !(x === 0 && 1 / x < 0)) {
      this.#ensure(6);
      this.#u8[this.#pos++] = Tag.Int32;
      this.#varint(((x << 1) ^ (x >> 31)) >>> 0); // zigzag
    } else {
      this.#byte(Tag.Double);
      this.#double(x);
    }
  }

  #bigint(x: bigint): void {
    const negative = x < 0n;
    let hex = (negative ? -x : x).toString(16);
    if (hex === '0') hex = '';
    if (hex.length % 2 === 1) hex = `0${hex}`;
    const length = hex.length / 2;
    this.#byte(negative ? 1 : 0);
    this.#varint(length);
    this.#ensure(length);
    const u8 = this.#u8;
    const p = this.#pos;
    for (let i = 0; i < length; i++) u8[p + i] = parseInt(hex.slice(hex.length - 2 * i - 2, hex.length - 2 * i), 16);
    this.#pos = p + length;
  }

  #bytes(source: Uint8Array): void {
    this.#varint(source.length);
    this.#ensure(source.length);
    this.#u8.set(source, this.#pos);
    this.#pos += source.length;
  }

  #lookup(x: object): number {
    if (this.#seenMap !== null) return this.#seenMap.get(x) ?? -1;
    const seen = this.#seen;
    for (let i = 0; i < this.#seenCount; i++) if (seen[i] === x) return i;
    return -1;
  }

  #remember(x: object): void {
    const id = this.#nextId++;
    if (this.#seenMap !== null) {
      this.#seenMap.set(x, id);
      return;
    }
    const seen = this.#seen;
    seen[this.#seenCount++] = x;
    if (this.#seenCount > 16) {
      const map = (this.#seenMap = new Map());
      for (let i = 0; i < this.#seenCount; i++) map.set(seen[i]!, i);
    }
  }

  /** Writes Tag.Carried (or Tag.Handle) for `x`, carried beside the bytes; the same object twice, one slot. */
  #carry(x: object, tag: number, carrying: Carrying): void {
    this.#carryIndex ??= new Map();
    let k = this.#carryIndex.get(x);
    if (k === undefined) {
      const carry = (this.#itemCarry ??= []);
      k = carry.length;
      carry.push(tag === Tag.Handle ? undefined : x); // a handle's slot gets its wire record later
      this.#carryIndex.set(x, k);
      if (tag === Tag.Handle) {
        this.#handles.push(x);
        this.#handleSlots.push(k);
      }
    }
    if (carrying > this.#carrying) this.#carrying = carrying;
    this.#byte(tag);
    this.#varint(k);
  }

  #enter(): void {
    if (++this.#depth > kMaxDepth)
      throw dataCloneError(`the value is nested more than ${kMaxDepth} levels deep and cannot be cloned.`);
  }

  #value(x: unknown): void {
    switch (typeof x) {
      case 'number':
        this.#number(x);
        return;
      case 'string':
        this.#scalars = false;
        this.#string(x);
        return;
      case 'boolean':
        this.#byte(x ? Tag.True : Tag.False);
        return;
      case 'undefined':
        this.#byte(Tag.Undefined);
        return;
      case 'bigint':
        this.#scalars = false;
        this.#byte(Tag.BigInt);
        this.#bigint(x);
        return;
      case 'object': {
        if (x === null) {
          this.#byte(Tag.Null);
          return;
        }
        this.#scalars = false;
        const seen = this.#lookup(x);
        if (seen >= 0) {
          this.#refs = true;
          this.#byte(Tag.ObjectReference);
          this.#varint(seen);
          return;
        }
        // A Proxy (revoked or not) is refused before anything of it is read, as V8 does.
        if (isProxy(x)) throw uncloneable(x);
        if (this.#transfer?.has(x) === true) {
          this.#carry(x, Tag.Carried, Carrying.Moved);
          return;
        }
        const proto = Object.getPrototypeOf(x);
        if (proto === ObjectProto || proto === null) {
          refusePlainExotic(x, proto);
          this.#object(x as Record<string, unknown>);
          return;
        }
        if (proto === ArrayProto && Array.isArray(x)) {
          this.#array(x);
          return;
        }
        this.#special(x, proto);
        return;
      }
      default:
        throw uncloneable(x); // symbol, function
    }
  }

  #object(x: Record<string, unknown>): void {
    this.#enter();
    this.#remember(x);
    const keys = Object.keys(x);
    const shape = this.#useShapes && keys.length > 0 && keys.length <= kShapeMaxKeys ? this.#shapeOf(keys) : undefined;
    if (shape !== undefined) {
      this.#byte(Tag.ShapedObject);
      this.#varint(shape.number);
      for (let i = 0; i < keys.length; i++) {
        const v = x[keys[i]!];
        // A getter met earlier may have deleted this key: structured clone leaves it out.
        if (v === undefined && !Object.hasOwn(x, keys[i]!)) this.#byte(Tag.Absent);
        else this.#value(v);
      }
    } else {
      this.#byte(Tag.BeginObject);
      this.#properties(x, keys, Tag.EndObject);
    }
    this.#depth--;
  }

  /** Writes `keys` of `x` and their values (skipping keys deleted meanwhile), then `end` and the count. */
  #properties(x: Record<string, unknown>, keys: string[], end: number): number {
    let count = 0;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const v = x[key];
      if (v === undefined && !Object.hasOwn(x, key)) continue;
      this.#string(key);
      this.#value(v);
      count++;
    }
    this.#byte(end);
    this.#varint(count);
    return count;
  }

  #array(x: unknown[]): void {
    this.#enter();
    this.#remember(x);
    const length = x.length;
    // Dense: every index and nothing else (so the walk costs what the array holds). Otherwise the keys it
    // has, which for a sparse array of length 2^32-1 are few.
    const keys = Object.keys(x);
    if (keys.length === length && (length === 0 || keys[length - 1] === String(length - 1))) {
      this.#byte(Tag.BeginDenseArray);
      this.#varint(length);
      for (let i = 0; i < length; i++) {
        const e = x[i];
        // A getter met earlier may have deleted or truncated this index: structured clone leaves a hole.
        if (e === undefined && !(i in x)) this.#byte(Tag.Hole);
        else this.#value(e);
      }
      this.#byte(Tag.EndDenseArray);
      this.#varint(0);
      this.#varint(length);
    } else {
      this.#byte(Tag.BeginSparseArray);
      this.#varint(length);
      this.#properties(x as unknown as Record<string, unknown>, keys, Tag.EndSparseArray);
      this.#varint(length);
    }
    this.#depth--;
  }

  /** Everything that is neither a plain object nor a plain array (kinds.ts says which kind). */
  #special(x: object, proto: object): void {
    const { kind, registered } = specialKind(x, proto, this.#isHandle);
    switch (kind) {
      case Special.Registered: {
        this.#enter();
        this.#remember(x);
        this.#byte(Tag.Instance);
        this.#string(registered!.name);
        if (registered!.serialize !== undefined) {
          this.#byte(Tag.CustomData);
          this.#value(registered!.serialize(x));
        } else {
          this.#byte(Tag.BeginObject);
          this.#properties(x as Record<string, unknown>, Object.keys(x), Tag.EndObject);
        }
        this.#depth--;
        return;
      }
      case Special.Handle:
        this.#carry(x, Tag.Handle, Carrying.Moved);
        return;
      case Special.View:
        this.#view(x as ArrayBufferView);
        return;
      case Special.Date:
        this.#remember(x);
        this.#byte(Tag.Date);
        this.#double((x as Date).getTime());
        return;
      case Special.Map: {
        this.#enter();
        this.#remember(x);
        this.#byte(Tag.BeginMap);
        let count = 0;
        for (const [k, v] of Map.prototype.entries.call(x) as IterableIterator<[unknown, unknown]>) {
          this.#value(k);
          this.#value(v);
          count++;
        }
        this.#byte(Tag.EndMap);
        this.#varint(2 * count);
        this.#depth--;
        return;
      }
      case Special.Set: {
        this.#enter();
        this.#remember(x);
        this.#byte(Tag.BeginSet);
        let count = 0;
        for (const v of Set.prototype.values.call(x) as IterableIterator<unknown>) {
          this.#value(v);
          count++;
        }
        this.#byte(Tag.EndSet);
        this.#varint(count);
        this.#depth--;
        return;
      }
      case Special.ArrayBuffer: {
        const buffer = x as ArrayBuffer;
        const bytes = bytesOf(buffer);
        if (
          (buffer as { resizable?: boolean }).resizable === true ||
          (bytes.length >= kCarryBytes && !this.#inlineBuffers)
        ) {
          this.#carry(x, Tag.Carried, Carrying.Cloned);
          return;
        }
        this.#remember(x);
        this.#byte(Tag.ArrayBuffer);
        this.#bytes(bytes);
        return;
      }
      case Special.SharedArrayBuffer:
        this.#carry(x, Tag.Carried, Carrying.Shared);
        return;
      case Special.RegExp: {
        const r = x as RegExp;
        this.#remember(x);
        this.#byte(Tag.RegExp);
        this.#string(r.source);
        this.#string(r.flags);
        return;
      }
      case Special.Error:
        this.#error(x as Error);
        return;
      case Special.Boxed:
        this.#remember(x);
        if (isNumberObject(x)) {
          this.#byte(Tag.NumberObject);
          this.#double(Number.prototype.valueOf.call(x));
        } else if (isStringObject(x)) {
          this.#byte(Tag.StringObject);
          this.#string(String.prototype.valueOf.call(x));
        } else if (isBooleanObject(x)) this.#byte(Boolean.prototype.valueOf.call(x) ? Tag.TrueObject : Tag.FalseObject);
        else if (isBigIntObject(x)) {
          this.#byte(Tag.BigIntObject);
          this.#bigint(BigInt.prototype.valueOf.call(x));
        }
        return;
      case Special.Host:
        this.#carry(x, Tag.Carried, Carrying.Cloned);
        return;
      default:
        this.#object(x as Record<string, unknown>);
    }
  }

  #view(x: ArrayBufferView): void {
    const buffer = x.buffer;
    // A view of a big buffer is written here and its buffer carried (so two views keep sharing it).
    if ((buffer as { resizable?: boolean }).resizable === true) {
      this.#carry(x, Tag.Carried, Carrying.Cloned);
      return;
    }
    this.#remember(x);
    const kind = isDataViewLike(x) ? kDataViewKind : kindOfTag.get(typedArrayTag.call(x) as string | undefined);
    if (kind === undefined) throw uncloneable(x);
    this.#byte(Tag.View);
    this.#byte(kind);
    this.#varint(x.byteOffset);
    this.#varint(x.byteLength);
    this.#value(buffer);
  }

  #error(x: Error): void {
    this.#enter();
    this.#remember(x);
    this.#byte(Tag.Error);
    const name = x.name; // looked up through the prototype chain, as V8 does
    const tag = typeof name === 'string' && Object.hasOwn(errorTags, name) ? errorTags[name] : undefined;
    if (tag !== undefined) this.#byte(tag);
    const message = Object.getOwnPropertyDescriptor(x, 'message');
    if (message !== undefined && 'value' in message) {
      this.#byte(ErrorTag.Message);
      this.#string(String(message.value));
    }
    const stack = Object.getOwnPropertyDescriptor(x, 'stack');
    const stackValue = stack === undefined ? undefined : 'value' in stack ? stack.value : x.stack;
    if (typeof stackValue === 'string') {
      this.#byte(ErrorTag.Stack);
      this.#string(stackValue);
    }
    const cause = Object.getOwnPropertyDescriptor(x, 'cause');
    if (cause !== undefined && 'value' in cause) {
      this.#byte(ErrorTag.Cause);
      this.#value(cause.value);
    }
    this.#byte(ErrorTag.End);
    this.#depth--;
  }
}

/** The bytes of a buffer; a detached one cannot be cloned, as structured clone says. */
function bytesOf(buffer: ArrayBuffer): Uint8Array {
  try {
    return new Uint8Array(buffer);
  } catch {
    throw dataCloneError('An ArrayBuffer is detached and could not be cloned.');
  }
}

function isDataViewLike(x: ArrayBufferView): boolean {
  return types.isDataView(x);
}
