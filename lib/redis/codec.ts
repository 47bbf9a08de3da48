// An item as it is stored in a stream entry: the library's own wire format (wire/format.ts), so that a Redis
// queue carries exactly what a local one does (every structured-clone kind, registered classes, each property
// read once, the depth limit), as one byte of flags and the bytes of a batch of one.
//
// Buffers of any size are written into those bytes. What only a thread can receive is refused at put with
// DataCloneError: shared memory, ports, platform objects (a Blob, a MessagePort), and handles (a local Queue or
// Connection means nothing in another process).
import { captureForServer } from '../handles.ts';
import { decodeItem } from '../wire/decode.ts';
import { Carrying, type Batch } from '../wire/format.ts';
import { dataCloneError } from '../wire/kinds.ts';

const kRefs = 1;
/** Where the one item of a batch starts (the header and the array's length: see Encoder.takeLast). */
const kItemOffset = Uint32Array.of(8);

/** Captures `value` now; throws DataCloneError (and captures nothing) if it cannot travel to another process. */
export function encodeItem(value: unknown): Buffer {
  const lone = captureForServer(value);
  if (lone.carrying !== Carrying.Nothing || lone.handles.length > 0)
    throw dataCloneError(
      'a queue on a server carries copies only: shared memory, resizable buffers, ports, platform objects (Blob, MessagePort, ...) and mpthreads handles cannot go to another process.',
    );
  const bytes = new Uint8Array(lone.batch.bytes);
  const out = Buffer.allocUnsafe(bytes.length + 1);
  out[0] = lone.batch.refs ? kRefs : 0;
  out.set(bytes, 1);
  return out;
}

export function decodeItemBytes(stored: Buffer): unknown {
  const bytes = new ArrayBuffer(stored.length - 1);
  new Uint8Array(bytes).set(stored.subarray(1));
  const batch: Batch = { n: 1, bytes, offsets: kItemOffset, refs: (stored[0]! & kRefs) !== 0, scalars: false };
  return decodeItem(batch, 0);
}
