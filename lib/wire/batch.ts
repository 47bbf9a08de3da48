// Operations on encoded batches that need no decoding: their size, and one item cut out to travel alone.
import { Tag, type Batch } from './format.ts';

/** The bytes a batch holds: its encoding and the binary data it carries beside it. */
export function batchByteLength(batch: Batch): number {
  let bytes = batch.bytes.byteLength;
  if (batch.carry !== undefined) {
    for (const carry of batch.carry) {
      if (carry === undefined) continue;
      for (const x of carry) if (x instanceof ArrayBuffer || ArrayBuffer.isView(x)) bytes += x.byteLength;
    }
  }
  return bytes;
}

/** The buffers a batch carries (to move a big item rather than copy it). */
export function carriedBuffers(batch: Batch): ArrayBuffer[] {
  const buffers: ArrayBuffer[] = [];
  if (batch.carry !== undefined) {
    for (const carry of batch.carry) {
      if (carry === undefined) continue;
      for (const x of carry) if (x instanceof ArrayBuffer && !buffers.includes(x)) buffers.push(x);
    }
  }
  return buffers;
}

function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/** The bytes of item `i` of `batch` (a view, not a copy). */
export function itemBytes(batch: Batch, i: number): Uint8Array {
  const trailer = 2 + varintLength(batch.n); // EndDenseArray, 0, n
  const start = batch.offsets[i]!;
  const end = i + 1 < batch.n ? batch.offsets[i + 1]! : batch.bytes.byteLength - trailer;
  return new Uint8Array(batch.bytes, start, end - start);
}

/** The bytes of a batch of one item: `header` (2 bytes), the array of one, `item`. */
export function wrapItem(header: Uint8Array, item: Uint8Array): ArrayBuffer {
  const u8 = new Uint8Array(wrappedLength(item.length));
  u8.set(item, 8);
  writeFrame(u8, 0, header, item.length);
  return u8.buffer;
}

/** The byte length of wrapItem()'s batch for an item of `n` bytes. */
export function wrappedLength(n: number): number {
  return 8 + n + 3;
}

/**
 * Writes wrapItem()'s batch for the item at bytes [from, to) of `source` (whose first 2 bytes are the
 * header) into `into` at `at`.
 */
export function writeWrapped(into: Uint8Array, at: number, source: Uint8Array, from: number, to: number): void {
  if (to - from > 256) into.set(source.subarray(from, to), at + 8);
  else for (let i = from, j = at + 8; i < to; i++, j++) into[j] = source[i]!; // no view to allocate
  writeFrame(into, at, source, to - from);
}

/** The header, the array of one around an item of `n` bytes at `at` + 8, and the array's end. */
function writeFrame(u8: Uint8Array, at: number, header: Uint8Array, n: number): void {
  u8[at] = header[0]!;
  u8[at + 1] = header[1]!;
  u8[at + 2] = Tag.BeginDenseArray;
  u8[at + 3] = 0x81; // 1 as a 5-byte varint
  u8[at + 4] = 0x80;
  u8[at + 5] = 0x80;
  u8[at + 6] = 0x80;
  u8[at + 7] = 0x00;
  const end = at + 8 + n;
  u8[end] = Tag.EndDenseArray;
  u8[end + 1] = 0;
  u8[end + 2] = 1;
}

/** Item `i` of `batch` as a batch of its own, bytes copied, with the shapes and carry it may need. */
export function sliceItem(batch: Batch, i: number): Batch {
  const bytes = wrapItem(new Uint8Array(batch.bytes, 0, 2), itemBytes(batch, i));
  const lone: Batch = { n: 1, bytes, offsets: [8], refs: batch.refs, scalars: batch.scalars };
  if (batch.shapes !== undefined) lone.shapes = batch.shapes;
  const carry = batch.carry?.[i];
  if (carry !== undefined) lone.carry = [carry];
  return lone;
}

/** Items [from, to) of `batch` as a batch of their own (bytes copied), with the shapes and carry they need. */
export function sliceItems(batch: Batch, from: number, to: number): Batch {
  if (from === 0 && to === batch.n) return batch;
  if (to - from === 1) return sliceItem(batch, from);
  const start = batch.offsets[from]!;
  const end = to < batch.n ? batch.offsets[to]! : batch.bytes.byteLength - (2 + varintLength(batch.n));
  const n = to - from;
  const trailer = [Tag.EndDenseArray, 0, ...varintBytes(n)];
  const u8 = new Uint8Array(8 + (end - start) + trailer.length);
  u8.set(new Uint8Array(batch.bytes, 0, 2), 0);
  u8[2] = Tag.BeginDenseArray;
  u8.set(varint5(n), 3);
  u8.set(new Uint8Array(batch.bytes, start, end - start), 8);
  u8.set(trailer, 8 + (end - start));
  const offsets = new Uint32Array(n);
  for (let i = 0; i < n; i++) offsets[i] = batch.offsets[from + i]! - start + 8;
  const part: Batch = {
    n,
    bytes: u8.buffer,
    offsets,
    refs: batch.refs,
    scalars: batch.scalars,
  };
  if (batch.shapes !== undefined) part.shapes = batch.shapes;
  if (batch.carry !== undefined) {
    const carry = batch.carry.slice(from, to);
    if (carry.some((c) => c !== undefined)) part.carry = carry;
  }
  return part;
}

function varintBytes(v: number): number[] {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

/** `v` as a varint padded to exactly 5 bytes (a batch's item count). */
function varint5(v: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < 4; i++) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}
