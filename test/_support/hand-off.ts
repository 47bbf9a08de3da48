// Plays the two ends of a queue's hand-off ring (lib/queue/cells.ts, "The hand-off") with the cells' own
// functions, as a put or a get of some thread would: for tests that arrange the ring's states directly.
import * as assert from 'uvu/assert';
import { captureItem } from '../../lib/handles.ts';
import { beginHandOff, endHandOff, kRefsFlag, kSlotBytes, takeHandedOff } from '../../lib/queue/cells.ts';
import { decodeLone } from '../../lib/wire/decode.ts';
import { Carrying } from '../../lib/wire/format.ts';

/** The bytes a put writes into a slot for `value` (a batch of one, carrying nothing). */
export function ringBytes(value: unknown): Uint8Array {
  const lone = captureItem(value);
  assert.is(lone.carrying, Carrying.Nothing, 'the value carries nothing');
  return new Uint8Array(lone.batch.bytes);
}

/** Writes `value` into the ring of queue cells `q` as holder `h` does (unbounded): it must go in. */
export function handOffValue(q: Int32Array, h: Int32Array, value: unknown): void {
  const bytes = ringBytes(value);
  const at = beginHandOff(q, h, bytes.length, 0);
  assert.ok(at >= 0, 'the ring took the item');
  new Uint8Array(q.buffer).set(bytes, at);
  endHandOff(q, h, bytes.length, false, 0);
}

/** Takes the ring's oldest item as a get does; undefined when it is empty. */
export function takeFromRing(q: Int32Array): unknown {
  const into = new Uint8Array(kSlotBytes);
  const meta = takeHandedOff(q, new Uint8Array(q.buffer), into);
  return meta < 0 ? undefined : decodeLone(into, Buffer.from(into.buffer), (meta & kRefsFlag) !== 0);
}
