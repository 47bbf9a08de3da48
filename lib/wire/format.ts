// The wire format: how a value is captured as bytes (encode.ts) and rebuilt (decode.ts). Queues write many
// items into one buffer (a batch); a Connection, a Process's args and a queue item that moves things write one.
//
// A batch is the bytes of one V8-serialized dense array whose elements are the items: a batch of numbers,
// booleans, null and undefined is exactly V8's format, and v8.deserialize reads it (about 4x faster than our
// decoder for such batches). Everything else uses V8's tag bytes where V8 has one for the same thing, so a
// hex dump reads the same, but the layouts after some of them are ours, and only decode.ts reads them.
//
//   batch    = 0xff version  'A' length:varint5  item*  '$' 0:varint length:varint
//   varint   = 7 bits per byte, least significant first, high bit set on every byte but the last
//   varint5  = a varint padded to exactly 5 bytes (the encoder patches the count in at the end)
//
//   | tag  | byte | what                          | layout after the tag                                      |
//   |------|------|-------------------------------|-----------------------------------------------------------|
//   | I    | 0x49 | int32                         | zigzag varint                                             |
//   | N    | 0x4e | other number                  | float64, little-endian                                    |
//   | "    | 0x22 | Latin-1 string                | length:varint, bytes                                      |
//   | c    | 0x63 | other string                  | byteLength:varint, UTF-16LE (lone surrogates kept)        |
//   | T F 0 _ | 0x54 0x46 0x30 0x5f | true false null undefined | -                                  |
//   | Z    | 0x5a | bigint                        | sign:byte, byteLength:varint, magnitude little-endian     |
//   | o    | 0x6f | object, keys written          | (key:string value)*, '{' count:varint                     |
//   | 0x01 |      | object of a known shape       | shape:varint, one value per key of the shape, in order;   |
//   |      |      |                               |   a value 0x02 (Absent) means the key was deleted while   |
//   |      |      |                               |   the object was being read, and is left out              |
//   | A    | 0x41 | dense array                   | length:varint, element* ('-' for a hole), '$' 0 length    |
//   | a    | 0x61 | sparse array (holes, extras)  | length:varint, (key value)*, '@' count:varint length      |
//   | D    | 0x44 | Date                          | float64                                                   |
//   | R    | 0x52 | RegExp                        | source:string, flags:string                               |
//   | y x  | 0x79 0x78 | new Boolean(true/false)  | -                                                         |
//   | n    | 0x6e | new Number()                  | float64                                                   |
//   | s    | 0x73 | new String()                  | string                                                    |
//   | z    | 0x7a | Object(bigint)                | as Z                                                      |
//   | ;    | 0x3b | Map                           | (key value)*, ':' 2*count:varint                          |
//   | '    | 0x27 | Set                           | value*, ',' count:varint                                  |
//   | B    | 0x42 | ArrayBuffer                   | byteLength:varint, bytes                                  |
//   | V    | 0x56 | typed array or DataView       | kind:byte, byteOffset:varint, length:varint, buffer value |
//   | r    | 0x72 | Error                         | ('E'|'R'|'F'|'S'|'T'|'U' prototype)? ('m' message)?       |
//   |      |      |                               |   ('s' stack)? ('c' cause:value)? '.'                     |
//   | 0x05 |      | instance of a registered class | name:string, then as 'o', or 0x06 and one value         |
//   | ^    | 0x5e | an object met before          | id:varint                                                 |
//   | 0x03 |      | an object carried beside      | k:varint, the item's carry[k] as it arrived (a            |
//   |      |      |   the bytes                   |   transferred buffer or port, a SharedArrayBuffer, a host |
//   |      |      |                               |   object such as a Blob, cloned by the platform)          |
//   | 0x04 |      | a mpthreads handle            | k:varint, carry[k] is its wire record, revived            |
//
// Object ids count within an item, from 0, in the order objects are written (every tag from 'o' to 0x05 above
// opens one; a view takes its id before its buffer). Items never share objects: each is its own clone.
//
// Limits: a value nested deeper than kMaxDepth containers is refused at the call with DataCloneError, in every
// thread, so that every thread can rebuild what it is sent (the main thread's stack is a quarter of a worker's;
// V8 rebuilds objects about 1,900 deep there with an empty stack, and a Connection's messages are V8's to rebuild).

export const Tag = {
  Int32: 0x49,
  Double: 0x4e,
  OneByteString: 0x22,
  TwoByteString: 0x63,
  True: 0x54,
  False: 0x46,
  Null: 0x30,
  Undefined: 0x5f,
  BigInt: 0x5a,
  BeginObject: 0x6f,
  EndObject: 0x7b,
  ShapedObject: 0x01,
  Absent: 0x02,
  BeginDenseArray: 0x41,
  EndDenseArray: 0x24,
  Hole: 0x2d,
  BeginSparseArray: 0x61,
  EndSparseArray: 0x40,
  Date: 0x44,
  RegExp: 0x52,
  TrueObject: 0x79,
  FalseObject: 0x78,
  NumberObject: 0x6e,
  StringObject: 0x73,
  BigIntObject: 0x7a,
  BeginMap: 0x3b,
  EndMap: 0x3a,
  BeginSet: 0x27,
  EndSet: 0x2c,
  ArrayBuffer: 0x42,
  View: 0x56,
  Error: 0x72,
  Instance: 0x05,
  CustomData: 0x06,
  ObjectReference: 0x5e,
  Carried: 0x03,
  Handle: 0x04,
} as const;

/** The sub-tags of an Error, as V8 writes them. */
export const ErrorTag = {
  EvalError: 0x45,
  RangeError: 0x52,
  ReferenceError: 0x46,
  SyntaxError: 0x53,
  TypeError: 0x54,
  URIError: 0x55,
  Message: 0x6d,
  Stack: 0x73,
  Cause: 0x63,
  End: 0x2e,
} as const;

/** The kinds of views, by the byte written after Tag.View. */
export const viewKinds = [
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
  DataView,
] as const;
/** Buffer is a Uint8Array subclass; structured clone makes it a plain Uint8Array, so do we. */
export type ViewKind = (typeof viewKinds)[number];

/** Deeper values are refused at the call (see above). */
export const kMaxDepth = 1_000;

/** Objects with more keys than this are written with their keys (a shape is an object literal of its keys). */
export const kShapeMaxKeys = 32;

/** The first bytes of every batch and single value: 0xff and the V8 format version this Node writes. */
export const kHeaderLength = 2;

/** An item's objects that travel beside its bytes, by the index its Carried/Handle tags name. */
export type Carry = unknown[];

/**
 * One or more items as they travel between threads. Everything in it is structured-cloneable; `bytes` and
 * `offsets.buffer` may be transferred.
 */
export interface Batch {
  /** How many items. */
  n: number;
  /** The items (see the layout above). */
  bytes: ArrayBuffer;
  /** Where each item starts in `bytes`, so that a consumer decodes only the items it takes (a plain array for a few). */
  offsets: Uint32Array | number[];
  /** The keys of each shape the batch's shaped objects use, by shape number. */
  shapes?: string[][];
  /** Some item refers to one of its own objects twice (the decoder must keep ids). */
  refs: boolean;
  /** Every item is a number, boolean, null or undefined: v8.deserialize reads the batch. */
  scalars: boolean;
  /** The objects items carry beside the bytes, by item: `carry[i]` is item i's (sparse). */
  carry?: (Carry | undefined)[];
}

/** The sort of things an item carries beside its bytes, which decides how it may travel. */
export const Carrying = {
  /** Nothing: the item can be copied to any number of threads. */
  Nothing: 0,
  /** SharedArrayBuffers only: shared, never fails to post, can go to any number of threads. */
  Shared: 1,
  /** Host objects (Blob, ...) the platform clones, or refuses: post the item now, to learn which. */
  Cloned: 2,
  /** Transferred buffers or ports, or handles: the item can go to one thread only, and must be posted now. */
  Moved: 3,
} as const;
export type Carrying = (typeof Carrying)[keyof typeof Carrying];
