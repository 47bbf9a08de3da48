// The payloads of the benchmark, shared by the main thread, the raw JavaScript workers and the mpthreads
// task modules, so every implementation sends exactly the same values and checks them the same way.
//
// Each payload has a maker (item i -> the value to send, plus what to transfer) and a checksum term (value
// -> number). A consumer sums the terms of what it received; the main thread computes the expected sum from
// the item numbers alone (`expectedChecksum`), so a lost, duplicated or corrupted item fails the case.

/** @typedef {'int' | 'object' | 'str1k' | 'buf64k' | 'buf64k-transfer' | 'buf1m' | 'buf1m-transfer'} Payload */

/** Every payload, in the order the report shows them. */
export const PAYLOADS = /** @type {const} */ ([
  'int',
  'object',
  'str1k',
  'buf64k',
  'buf64k-transfer',
  'buf1m',
  'buf1m-transfer',
]);

const KIB64 = 64 * 1024;
const MIB = 1024 * 1024;
const FILL = 0xab;

/** Bytes of payload per item, for MB/s; null where the size is not a meaningful figure (int, object). */
export const PAYLOAD_BYTES = /** @type {Record<Payload, number | null>} */ ({
  int: null,
  object: null,
  str1k: 1024,
  buf64k: KIB64,
  'buf64k-transfer': KIB64,
  buf1m: MIB,
  'buf1m-transfer': MIB,
});

/** True for payloads sent with a transfer list (a fresh buffer per item, moved instead of copied). */
export function isTransfer(/** @type {Payload} */ payload) {
  return payload.endsWith('-transfer');
}

/** @param {number} size */
function filled(size) {
  const u8 = new Uint8Array(size);
  u8.fill(FILL);
  return u8;
}

/**
 * Returns `make(i)` for a payload. Copied payloads: str1k and buf* are built once and the same value is
 * sent every time (each send still copies it, as Python's pickle does). Transferred payloads: a fresh
 * buffer per item (a moved buffer is gone from the sender), its first byte set to i & 255.
 * @param {Payload} payload
 * @returns {(i: number) => unknown}
 */
export function maker(payload) {
  switch (payload) {
    case 'int':
      return (i) => i & 1023;
    case 'object':
      return (i) => ({ a: i, b: 'x', c: true, d: 2.5, e: null, f: [1, 2], g: 'hello', h: 42, i: -1, j: 'z' });
    case 'str1k': {
      const s = 's'.repeat(1024);
      return () => s;
    }
    case 'buf64k': {
      const b = filled(KIB64);
      return () => b;
    }
    case 'buf1m': {
      const b = filled(MIB);
      return () => b;
    }
    case 'buf64k-transfer':
      return (i) => {
        const b = new Uint8Array(KIB64);
        b[0] = i & 255;
        return b;
      };
    case 'buf1m-transfer':
      return (i) => {
        const b = new Uint8Array(MIB);
        b[0] = i & 255;
        return b;
      };
    default:
      throw new Error(`unknown payload ${payload}`);
  }
}

/**
 * The checksum term of one received value. Throws on a value of the wrong shape, so a case that delivers
 * garbage fails instead of reporting a rate.
 * @param {Payload} payload
 * @returns {(v: any) => number}
 */
export function checker(payload) {
  switch (payload) {
    case 'int':
      return (v) => {
        if (typeof v !== 'number') throw new Error(`int payload: got ${typeof v}`);
        return v;
      };
    case 'object':
      return (v) => {
        if (v === null || typeof v !== 'object' || v.j !== 'z')
          throw new Error(`object payload: got ${JSON.stringify(v)}`);
        return v.a + v.h + v.f[1];
      };
    case 'str1k':
      return (v) => {
        if (typeof v !== 'string') throw new Error(`str1k payload: got ${typeof v}`);
        return v.length;
      };
    default:
      return (v) => {
        if (!(v instanceof Uint8Array)) throw new Error(`${payload} payload: got ${Object.prototype.toString.call(v)}`);
        return v.byteLength + v[0];
      };
  }
}

/**
 * The sum of the checksum terms of items start .. start+n-1, computed without building them.
 * @param {Payload} payload
 * @param {number} start
 * @param {number} n
 */
export function expectedChecksum(payload, start, n) {
  let sum = 0;
  switch (payload) {
    case 'int':
      for (let i = start; i < start + n; i++) sum += i & 1023;
      return sum;
    case 'object':
      for (let i = start; i < start + n; i++) sum += i + 44;
      return sum;
    case 'str1k':
      return n * 1024;
    case 'buf64k':
      return n * (KIB64 + FILL);
    case 'buf1m':
      return n * (MIB + FILL);
    case 'buf64k-transfer':
      for (let i = start; i < start + n; i++) sum += KIB64 + (i & 255);
      return sum;
    case 'buf1m-transfer':
      for (let i = start; i < start + n; i++) sum += MIB + (i & 255);
      return sum;
    default:
      throw new Error(`unknown payload ${payload}`);
  }
}

/**
 * Nearest-rank percentile of an ascending array (the definition bench/python_mp.py uses).
 * @param {ArrayLike<number>} sorted
 * @param {number} p
 */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const k = Math.max(0, Math.min(sorted.length - 1, Math.ceil((p * sorted.length) / 100) - 1));
  return sorted[k];
}

/**
 * What a round-trip pinger reports: loop time and latency percentiles (µs) of `lat` (ms, unsorted).
 * @param {Float64Array} lat
 * @param {number} elapsedMs
 */
export function roundTripStats(lat, elapsedMs) {
  const sorted = lat.slice().sort();
  return { elapsedMs, p50us: percentile(sorted, 50) * 1000, p99us: percentile(sorted, 99) * 1000 };
}
