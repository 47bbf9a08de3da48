// Batch encoding for queues: items are captured at put() time by writing them in V8's own serialization
// format (the one structured clone and v8.serialize use) into one growing buffer, so a batch of N items is
// the bytes of one V8 array and the consumer decodes it in one pass. One addition of ours: a plain object
// whose keys the encoder has seen before is written as a *shaped object* (a tag, a shape number, then its
// values only); the batch lists its shapes' keys beside the bytes (`shapes`). Objects of one shape are what a
// queue mostly carries, and writing and reading their keys was about a fifth of the cost of each.
//
// Why not a v8.Serializer per batch: it shares its object-identity map across items, so an object put twice
// in one batch arrives as the *same, stale* object; and a failed writeValue leaves bytes it cannot remove.
// Why not structuredClone() or v8.serialize() per item: 3-10x slower (measured in bench/ and the queue issue).
//
// This encoder writes plain data itself: primitives (not bigint), plain objects and dense arrays, keeping
// aliasing and cycles *within* an item and sharing nothing across items. Anything else (Date, Map, typed
// arrays, class instances, bigint, ...) is serialized on its own by a v8.Serializer and carried beside the
// batch ("side"); that path throws the platform's DataCloneError for what cannot be cloned. Host objects
// (MessagePort, Blob, ...) are beyond both: put() declines them and the queue posts such an item on its own,
// so the platform copies it or throws its own error. A failed item is rolled back: the batch is never left
// half-written.
//
// Invariants:
//   #u8[0..#pos) is a V8 header, the tag of a dense array with a 5-byte length (patched by finish()), then
//     #n complete items; object ids in back-references count from 1 (id 0 is the batch array itself).
//   #seen holds only the objects of the item being written; it is cleared after every put().
//   A shaped object's number indexes this batch's #shapeKeys; a shape gets its number in a batch the first time
//     it is written there (KnownShape.batch is that batch's #batchNumber).
import v8 from 'node:v8';
import { types } from 'node:util';

const HEADER = v8.serialize(undefined).subarray(0, 2); // 0xff, format version
if (HEADER[0] !== 0xff) throw new Error('mpthreads: unexpected V8 serialization header');

const Tag = {
  Int32: 0x49, Double: 0x4e, OneByteString: 0x22, TwoByteString: 0x63, True: 0x54, False: 0x46, Null: 0x30,
  Undefined: 0x5f, BeginObject: 0x6f, EndObject: 0x7b, BeginDenseArray: 0x41, EndDenseArray: 0x24,
  ObjectReference: 0x5e, Padding: 0x00,
  /** Ours, not V8's: a plain object of a known shape (varint shape number, then its values in key order). */
  ShapedObject: 0x01,
} as const;

/** Objects with more keys than this are written with their keys (a shape is an object literal of its keys). */
const kShapeMaxKeys = 32;
/** Shapes an encoder learns, at most: objects used as maps (keys that never repeat) must not fill memory. */
const kShapesPerEncoder = 512;

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

/** Thrown out of #value when it meets an object the encoder's `declines` picks. */
const kDeclined: unique symbol = Symbol('declined');

/**
 * True if `found` holds for `value` or for anything inside it, walking arrays and plain objects (cycle-safe,
 * no recursion, so deep values are fine).
 */
export function holdsAny(value: unknown, found: (v: object) => boolean): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const seen = new Set<object>();
  const stack: object[] = [value];
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (found(v)) return true;
    if (seen.has(v)) continue;
    seen.add(v);
    const proto = Object.getPrototypeOf(v);
    if (!Array.isArray(v) && proto !== Object.prototype && proto !== null) continue;
    for (const key of Object.keys(v)) {
      const child = (v as Record<string, unknown>)[key];
      if (typeof child === 'object' && child !== null) stack.push(child);
    }
  }
  return false;
}

/** Thrown out of writeValue when V8 meets a host object (see BatchEncoder.put). */
const kHostObject: unique symbol = Symbol('host object');

/** v8.Serializer throws a plain Error; structured clone throws a DOMException named DataCloneError. */
class CloneSerializer extends v8.Serializer {
  _getDataCloneError(message: string): Error {
    return new DOMException(message, 'DataCloneError');
  }
  /** Host objects (MessagePort, Blob, BlockList, ...): only Node's own messaging can copy them, or refuse. */
  _writeHostObject(): never {
    throw kHostObject;
  }
}

const f64 = new Float64Array(1);
const f64u8 = new Uint8Array(f64.buffer);
const ObjectProto = Object.prototype;
const ArrayProto = Array.prototype;
const { isProxy, isArgumentsObject, isModuleNamespaceObject } = types;

/** The result of sealing a batch: transfer `transfer`, send the rest (fields as in EncodedItems). */
export interface EncodedBatch extends EncodedItems {
  bytes: ArrayBuffer;
  side: (number | ArrayBuffer)[] | null;
  transfer: ArrayBuffer[];
  refs: boolean;
  scalars: boolean;
  offsets: Uint32Array;
}

export class BatchEncoder {
  #u8: Uint8Array;
  #pos = 0;
  #n = 0;
  #nextId = 1;
  #seenBase = 1;
  #seen: object[] = [];
  #seenMap: Map<object, number> | null = null;
  #side: (number | ArrayBuffer)[] | null = null;
  #sideBytes = 0;
  /** The batch holds a back-reference (an object seen twice within an item): decode it with identities. */
  #refs = false;
  /** Where each item of the batch starts in #u8 (so one item can be decoded alone). */
  #offsets = new Uint32Array(1024);
  /** Only numbers, booleans, null and undefined so far: V8's own deserializer reads those ~4x faster than ours. */
  #scalars = true;
  /** Shapes learned so far, by first key. */
  #known = new Map<string, KnownShape[]>();
  #knownCount = 0;
  #lastShape: KnownShape | undefined;
  #batchNumber = 0;
  /** The keys of each shape this batch uses, by shape number. */
  #shapeKeys: string[][] = [];

  readonly #declines: ((value: object) => boolean) | undefined;

  /**
   * `declines`: objects (other than plain objects and arrays) that put() must not encode, found while it walks
   * the item anyway: the queue passes its handle test, so an item holding a Queue or Connection is sent apart.
   */
  constructor(options: { capacity?: number; declines?: (value: object) => boolean } = {}) {
    this.#u8 = new Uint8Array(options.capacity ?? 1 << 16);
    this.#declines = options.declines;
    this.#reset();
  }

  get count(): number {
    return this.#n;
  }

  get byteLength(): number {
    return this.#pos + this.#sideBytes;
  }

  /**
   * Captures `value` as the next item; throws (DataCloneError, or what a getter threw) and adds nothing.
   * Returns false, adding nothing, when `value` holds a host object (MessagePort, Blob, ...): only the
   * platform's structured clone (postMessage) can copy those, so the caller sends that item through it; and
   * when it holds an object `declines` picks, in an array or plain object.
   */
  put(value: unknown): boolean {
    const pos = this.#pos;
    const id = this.#nextId;
    this.#seenBase = id;
    let written: boolean;
    try {
      written = this.#value(value);
    } catch (error) {
      this.#pos = pos;
      this.#nextId = id;
      if (error === kDeclined) return false;
      // Very deep values overflow this recursive writer before V8's; let V8 try them, unless they hold a
      // declined object deeper than it went.
      if (!(error instanceof RangeError)) throw error;
      if (this.#declines !== undefined && holdsAny(value, this.#declines)) return false;
      written = false;
    } finally {
      if (this.#seen.length > 0) this.#seen.length = 0;
      this.#seenMap = null;
    }
    if (!written) {
      this.#pos = pos;
      this.#nextId = id;
      const serializer = new CloneSerializer();
      serializer.writeHeader();
      try {
        serializer.writeValue(value);
      } catch (error) {
        if (error === kHostObject) return false;
        throw error;
      }
      const buffer = serializer.releaseBuffer();
      (this.#side ??= []).push(this.#n, buffer.buffer.byteLength === buffer.byteLength ? buffer.buffer : buffer.slice().buffer);
      this.#sideBytes += buffer.byteLength;
      this.#ensure(1);
      this.#u8[this.#pos++] = Tag.Undefined; // placeholder, replaced by the side item when decoding
    }
    if (this.#n === this.#offsets.length) {
      const grown = new Uint32Array(2 * this.#n);
      grown.set(this.#offsets);
      this.#offsets = grown;
    }
    this.#offsets[this.#n] = pos;
    this.#n++;
    return true;
  }

  /** Seals the batch and starts a new one. */
  finish(): EncodedBatch {
    const u8 = this.#u8;
    let n = this.#n;
    for (let i = 3; i < 7; i++) { u8[i] = (n & 0x7f) | 0x80; n >>>= 7; }
    u8[7] = n;
    this.#ensure(11);
    this.#u8[this.#pos++] = Tag.EndDenseArray;
    this.#varint(0);
    this.#varint(this.#n);
    const bytes = this.#u8.slice(0, this.#pos).buffer;
    const side = this.#side;
    const transfer = [bytes];
    if (side !== null) for (let i = 1; i < side.length; i += 2) transfer.push(side[i] as ArrayBuffer);
    const offsets = this.#offsets.slice(0, this.#n);
    transfer.push(offsets.buffer);
    const shapes = this.#shapeKeys.length > 0 ? this.#shapeKeys : undefined;
    const result = { n: this.#n, bytes, side, transfer, refs: this.#refs, scalars: this.#scalars && side === null, offsets, shapes };
    this.#reset();
    return result;
  }

  #reset(): void {
    const u8 = this.#u8;
    u8[0] = HEADER[0]!;
    u8[1] = HEADER[1]!;
    u8[2] = Tag.BeginDenseArray; // length: a 5-byte varint at 3..7, patched by finish()
    this.#pos = 8;
    this.#n = 0;
    this.#nextId = 1;
    this.#side = null;
    this.#sideBytes = 0;
    this.#refs = false;
    this.#scalars = true;
    this.#batchNumber++;
    this.#shapeKeys = [];
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
    let capacity = this.#u8.length * 2;
    while (capacity < this.#pos + k) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.#u8.subarray(0, this.#pos));
    this.#u8 = grown;
  }

  #varint(v: number): void {
    this.#ensure(5);
    const u8 = this.#u8;
    let p = this.#pos;
    while (v >= 0x80) { u8[p++] = (v & 0x7f) | 0x80; v >>>= 7; }
    u8[p++] = v;
    this.#pos = p;
  }

  #string(s: string): void {
    const length = s.length;
    this.#ensure(6 + 2 * length);
    const u8 = this.#u8;
    const start = this.#pos;
    u8[start] = Tag.OneByteString;
    this.#pos = start + 1;
    this.#varint(length);
    let p = this.#pos;
    let i = 0;
    for (; i < length; i++) {
      const c = s.charCodeAt(i);
      if (c > 0xff) break;
      u8[p + i] = c;
    }
    if (i === length) { this.#pos = p + length; return; }
    u8[start] = Tag.TwoByteString; // not Latin-1: rewrite as UTF-16LE
    this.#pos = start + 1;
    this.#varint(2 * length);
    p = this.#pos;
    for (i = 0; i < length; i++) { const c = s.charCodeAt(i); u8[p++] = c & 0xff; u8[p++] = c >>> 8; }
    this.#pos = p;
  }

  #number(x: number): void {
    if ((x | 0) === x && !(x === 0 && 1 / x < 0)) {
      this.#ensure(6);
      this.#u8[this.#pos++] = Tag.Int32;
      this.#varint(((x << 1) ^ (x >> 31)) >>> 0); // zigzag
    } else {
      this.#ensure(9);
      const u8 = this.#u8;
      let p = this.#pos;
      u8[p++] = Tag.Double;
      f64[0] = x;
      for (let i = 0; i < 8; i++) u8[p++] = f64u8[i]!;
      this.#pos = p;
    }
  }

  #lookup(x: object): number {
    if (this.#seenMap !== null) return this.#seenMap.get(x) ?? -1;
    const seen = this.#seen;
    for (let i = 0; i < seen.length; i++) if (seen[i] === x) return this.#seenBase + i;
    return -1;
  }

  #remember(x: object): void {
    const id = this.#nextId++;
    if (this.#seenMap !== null) { this.#seenMap.set(x, id); return; }
    const seen = this.#seen;
    seen.push(x);
    if (seen.length > 16) {
      const map = (this.#seenMap = new Map());
      for (let i = 0; i < seen.length; i++) map.set(seen[i]!, this.#seenBase + i);
    }
  }

  /** Writes `x`; false when it needs the v8.Serializer path (the caller rolls back). */
  #value(x: unknown): boolean {
    switch (typeof x) {
      case 'number': this.#number(x); return true;
      case 'string': this.#scalars = false; this.#string(x); return true;
      case 'boolean': this.#ensure(1); this.#u8[this.#pos++] = x ? Tag.True : Tag.False; return true;
      case 'undefined': this.#ensure(1); this.#u8[this.#pos++] = Tag.Undefined; return true;
      case 'object': {
        if (x === null) { this.#ensure(1); this.#u8[this.#pos++] = Tag.Null; return true; }
        this.#scalars = false;
        const seen = this.#lookup(x);
        if (seen >= 0) {
          this.#refs = true;
          this.#ensure(1);
          this.#u8[this.#pos++] = Tag.ObjectReference;
          this.#varint(seen);
          return true;
        }
        const proto = Object.getPrototypeOf(x);
        if (proto === ObjectProto || proto === null) {
          // Proxies, arguments objects and module namespaces look plain but V8 rejects or treats them apart.
          if (isProxy(x) || (proto === ObjectProto ? isArgumentsObject(x) : isModuleNamespaceObject(x))) return false;
          this.#remember(x);
          const keys = Object.keys(x);
          const shape = keys.length > 0 && keys.length <= kShapeMaxKeys ? this.#shapeOf(keys) : undefined;
          if (shape !== undefined) {
            this.#ensure(1);
            this.#u8[this.#pos++] = Tag.ShapedObject;
            this.#varint(shape.number);
            // One frame per level, as in the rest of #value: very deep items must not overflow here first.
            for (let i = 0; i < keys.length; i++) {
              if (!this.#value((x as Record<string, unknown>)[keys[i]!])) return false;
            }
            return true;
          }
          this.#ensure(1);
          this.#u8[this.#pos++] = Tag.BeginObject;
          for (let i = 0; i < keys.length; i++) {
            const key = keys[i]!;
            this.#string(key);
            if (!this.#value((x as Record<string, unknown>)[key])) return false;
          }
          this.#ensure(1);
          this.#u8[this.#pos++] = Tag.EndObject;
          this.#varint(keys.length);
          return true;
        }
        if (proto === ArrayProto && Array.isArray(x)) {
          if (isProxy(x)) return false;
          const length = x.length;
          // Only dense arrays with no extra properties (even when empty); holes and extras take the V8 path.
          const keys = Object.keys(x);
          if (keys.length !== length || (length > 0 && keys[length - 1] !== String(length - 1))) return false;
          this.#remember(x);
          this.#ensure(1);
          this.#u8[this.#pos++] = Tag.BeginDenseArray;
          this.#varint(length);
          for (let i = 0; i < length; i++) {
            const e = x[i];
            if (e === undefined && !(i in x)) return false;
            if (!this.#value(e)) return false;
          }
          this.#ensure(1);
          this.#u8[this.#pos++] = Tag.EndDenseArray;
          this.#varint(0);
          this.#varint(length);
          return true;
        }
        if (this.#declines?.(x) === true) throw kDeclined;
        return false;
      }
      default:
        return false; // bigint, symbol, function: V8 writes or rejects them
    }
  }
}

/** A batch as it travels between threads (lib/queue-protocol.ts's Batch adds items that travel as values). */
export interface EncodedItems {
  n: number;
  /** The items as one array, in V8's wire format plus our shaped objects. */
  bytes?: ArrayBuffer;
  /** Items serialized beside the batch by V8: pairs of (item index, bytes). */
  side?: (number | ArrayBuffer)[] | null;
  /** false: no item refers to one of its objects twice (the decoder may skip tracking identities). */
  refs?: boolean;
  /** true: every item is a number, boolean, null or undefined (decoded by V8's own deserializer). */
  scalars?: boolean;
  /** Where each item starts in `bytes`, so that a consumer decodes only the items it takes. */
  offsets?: Uint32Array;
  /** The keys of each shape the batch's shaped objects use, by shape number. */
  shapes?: string[][];
}

/**
 * Decodes the items of a batch one at a time, on demand: a consumer that shares a stream with others decodes
 * only the items it takes. Batches that need identities (refs), or are all scalars (V8 reads those faster in
 * one go), or came without offsets are decoded whole at the first access.
 */
export class BatchReader {
  readonly #batch: EncodedItems;
  #all: unknown[] | undefined;
  #u8: Uint8Array | undefined;
  #buffer: Buffer | undefined;
  #sideAt: Map<number, ArrayBuffer> | undefined;
  #shapes: Shape[] | undefined;

  constructor(batch: EncodedItems) {
    this.#batch = batch;
  }

  item(i: number): unknown {
    const batch = this.#batch;
    if (this.#all !== undefined) return this.#all[i];
    if (batch.refs !== false || batch.scalars === true || batch.offsets === undefined) {
      this.#all = decodeBatch(batch);
      return this.#all[i];
    }
    if (batch.side) {
      this.#sideAt ??= new Map(Array.from({ length: batch.side.length / 2 }, (_, k) => [batch.side![2 * k] as number, batch.side![2 * k + 1] as ArrayBuffer]));
      const side = this.#sideAt.get(i);
      if (side !== undefined) return readV8(side);
    }
    this.#u8 ??= new Uint8Array(batch.bytes!);
    this.#buffer ??= Buffer.from(batch.bytes!);
    this.#shapes ??= shapesOf(batch);
    try {
      return decodeAt(this.#u8, this.#buffer, batch.offsets[i]!, this.#shapes);
    } catch {
      // Too deep for this thread's stack, say: decode the batch the sure way (V8 may go deeper).
      this.#all = decodeBatch(batch, false);
      return this.#all[i];
    }
  }
}

/** The bytes a batch carries: its encoding and the items serialized beside it. */
export function batchByteLength(batch: EncodedItems): number {
  let bytes = batch.bytes?.byteLength ?? 0;
  if (batch.side) for (let i = 1; i < batch.side.length; i += 2) bytes += (batch.side[i] as ArrayBuffer).byteLength;
  return bytes;
}

/** One value V8-serialized with its header (an item beside the batch, or a whole batch). */
function readV8(buffer: ArrayBuffer): unknown {
  const d = new v8.Deserializer(Buffer.from(buffer));
  d.readHeader();
  return d.readValue();
}

/**
 * Decodes a sealed batch back into its items (structured-clone equivalent copies). `hints` false: ignore the
 * batch's decoding hints (track identities, read scalars with our decoder), the sure way.
 */
export function decodeBatch(batch: EncodedItems, hints = true): unknown[] {
  const refs = !hints || batch.refs !== false;
  if (hints && batch.scalars === true) return v8.deserialize(Buffer.from(batch.bytes!)) as unknown[];
  let items: unknown[];
  try {
    items = decodeFast(batch.bytes!, refs, shapesOf(batch));
  } catch (error) {
    // Something only V8 reads (or an item too deep for this thread's stack): V8's deserializer may manage,
    // but only a batch without shaped objects is V8's format alone.
    if (batch.shapes !== undefined) throw error;
    items = readV8(batch.bytes!) as unknown[];
  }
  const side = batch.side;
  if (side) {
    for (let i = 0; i < side.length; i += 2) items[side[i] as number] = readV8(side[i + 1] as ArrayBuffer);
  }
  return items;
}

// A decoder for exactly the tags BatchEncoder writes: about 2x faster than v8.Deserializer on small objects.
// Module-level state, so the JIT warms up once. Two-byte strings are decoded by Buffer, not TextDecoder, which
// would replace lone surrogates with U+FFFD (structured clone keeps them).
const latin1 = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i));
const kShortSlots = 1024;
const shortStrings: (string | undefined)[] = new Array(kShortSlots).fill(undefined);
let D8: Uint8Array = new Uint8Array(0);
let DBUF: Buffer = Buffer.alloc(0);
let DP = 0;
let DIDS: object[] = [];

function dVarint(): number {
  const u8 = D8;
  let b = u8[DP++]!;
  if (b < 0x80) return b;
  // Up to four bytes in int32 arithmetic (28 bits: always positive); beyond, in doubles.
  let v = b & 0x7f;
  b = u8[DP++]!;
  v |= (b & 0x7f) << 7;
  if (b < 0x80) return v;
  b = u8[DP++]!;
  v |= (b & 0x7f) << 14;
  if (b < 0x80) return v;
  b = u8[DP++]!;
  v |= (b & 0x7f) << 21;
  if (b < 0x80) return v;
  let shift = 28;
  do { b = u8[DP++]!; v += (b & 0x7f) * 2 ** shift; shift += 7; } while (b & 0x80);
  return v;
}

function dLatin1(length: number): string {
  const u8 = D8;
  if (length === 1) return latin1[u8[DP++]!]!;
  if (length <= 16) {
    // Short strings repeat (keys, enum-like values): reuse the one decoded last time in this slot if it has the
    // same bytes, instead of building a new string.
    const p = DP;
    const slot = (length * 31 + u8[p]! * 7 + u8[p + length - 1]! * 131) & (kShortSlots - 1);
    let s = shortStrings[slot];
    if (s !== undefined && s.length === length) {
      let i = 0;
      while (i < length && s.charCodeAt(i) === u8[p + i]) i++;
      if (i === length) { DP += length; return s; }
    }
    s = '';
    for (let i = 0; i < length; i++) s += latin1[u8[p + i]!]!;
    shortStrings[slot] = s;
    DP += length;
    return s;
  }
  const s = DBUF.toString('latin1', DP, DP + length);
  DP += length;
  return s;
}

function dRead(): unknown {
  const u8 = D8;
  const tag = u8[DP++];
  switch (tag) {
    case Tag.Int32: { const z = dVarint(); return (z >>> 1) ^ -(z & 1); }
    case Tag.OneByteString: return dLatin1(dVarint());
    case Tag.TwoByteString: { const n = dVarint(); const s = DBUF.toString('utf16le', DP, DP + n); DP += n; return s; }
    case Tag.Double: { const x = DBUF.readDoubleLE(DP); DP += 8; return x; }
    case Tag.True: return true;
    case Tag.False: return false;
    case Tag.Null: return null;
    case Tag.Undefined: return undefined;
    case Tag.BeginObject: {
      // Objects the encoder does not shape: empty, over kShapeMaxKeys keys, a __proto__ key, or past its limit.
      const o: Record<string, unknown> = {};
      if (DREFS) DIDS.push(o);
      while (u8[DP] !== Tag.EndObject) {
        let key: string;
        if (u8[DP] === Tag.OneByteString) { DP++; key = dLatin1(dVarint()); } else key = String(dRead());
        const v = dRead();
        if (key === '__proto__') Object.defineProperty(o, key, { value: v, writable: true, enumerable: true, configurable: true });
        else o[key] = v;
      }
      DP++;
      dVarint();
      return o;
    }
    case Tag.BeginDenseArray: {
      const length = dVarint();
      const a: unknown[] = [];
      if (DREFS) DIDS.push(a);
      for (let i = 0; i < length; i++) a.push(dRead());
      DP++;
      dVarint();
      dVarint();
      return a;
    }
    case Tag.ShapedObject: {
      const shape = DSHAPES[dVarint()];
      if (shape === undefined) throw new Error(`mpthreads wire: unknown shape at ${DP}`);
      const keys = shape.keys;
      const n = keys.length;
      if (DREFS) {
        // Registered before its values are read: one of them may refer back to it.
        const o: Record<string, unknown> = {};
        DIDS.push(o);
        for (let i = 0; i < n; i++) o[keys[i]!] = dRead();
        return o;
      }
      const start = ST;
      ST += n;
      if (ST > SVUSED) SVUSED = ST;
      for (let i = 0; i < n; i++) SV[start + i] = dRead();
      ST = start;
      return shape.make(SV, start);
    }
    case Tag.ObjectReference: return DIDS[dVarint()];
    case Tag.Padding: return dRead();
    default: throw new Error(`mpthreads wire: unexpected tag 0x${tag?.toString(16)} at ${DP - 1}`);
  }
}

/** One item without back-references, starting at `offset`. */
function decodeAt(u8: Uint8Array, buffer: Buffer, offset: number, shapes: Shape[]): unknown {
  startDecoding(u8, buffer, offset, false, shapes);
  try {
    return dRead();
  } finally {
    endDecoding();
  }
}

function decodeFast(bytes: ArrayBuffer, refs: boolean, shapes: Shape[]): unknown[] {
  startDecoding(new Uint8Array(bytes), Buffer.from(bytes), 2, refs, shapes);
  try {
    return dRead() as unknown[];
  } finally {
    endDecoding();
  }
}

function startDecoding(u8: Uint8Array, buffer: Buffer, offset: number, refs: boolean, shapes: Shape[]): void {
  D8 = u8;
  DBUF = buffer;
  DP = offset;
  DIDS = refs ? [] : NO_IDS;
  DREFS = refs;
  DSHAPES = shapes;
}

/** Lets go of the batch and of every value decoded, so that nothing outlives the call here. */
function endDecoding(): void {
  D8 = EMPTY_U8;
  DBUF = EMPTY_BUFFER;
  DIDS = NO_IDS;
  DSHAPES = NO_SHAPES;
  // A loop, not SV.fill(): a builtin call costs more at the usual size (one object's values).
  for (let i = 0; i < SVUSED; i++) SV[i] = undefined;
  SVUSED = 0;
  ST = 0;
}

const EMPTY_U8 = new Uint8Array(0);
const EMPTY_BUFFER = Buffer.alloc(0);
/** Object ids are kept only when a batch has back-references (DREFS): otherwise nothing is pushed here. */
const NO_IDS: object[] = [];

// A shaped object's values sit on a stack (SV, from ST up) until the last is read, then its shape's function
// builds it in one step (an object literal: one hidden class, no keyed stores).
let DREFS = true;
const SV: unknown[] = [];
let ST = 0;
let SVUSED = 0;
interface Shape { keys: string[]; make: (values: unknown[], start: number) => object }

// The shapes batches name (Tag.ShapedObject), with their object-literal functions, by their keys (JSON).
const NO_SHAPES: Shape[] = [];
let DSHAPES: Shape[] = NO_SHAPES;
const kShapesKept = 4096;
const shapesByKeys = new Map<string, Shape>();

/** A function that builds an object with `keys` from values[start...] (an object literal: one hidden class). */
function objectMaker(keys: string[]): Shape['make'] {
  const body = keys.map((k, i) => `${JSON.stringify(k)}: v[s + ${i}]`).join(', ');
  try {
    // eslint-disable-next-line @typescript-eslint/no-implied-eval -- the keys are JSON-quoted literals
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

function shapesOf(batch: EncodedItems): Shape[] {
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
