// A Connection's capture: a copy of the value, made at send() in one walk that reads each property once (as
// structured clone does), finds handles and registered classes, and refuses what structured clone refuses;
// then the platform's postMessage serializes the copy, which holds nothing left to surprise it (no getters, no
// handles). A pipe carries one value per message: a copy costs a fraction of what postMessage itself costs,
// where encoding to bytes (encode.ts, for queues' batches) costs an allocation and a transfer per message.
//
// What the copy shares with the original: leaves the platform copies without running user code (Dates,
// RegExps, binary data, errors, boxed primitives, host objects such as a Blob), and whatever the transfer list
// names. Plain objects, arrays, Maps, Sets and class instances are copied. A handle becomes its wire record
// and a registered class's instance a marker; `revive` says the receiver must turn those back (revive()).
import { kMarshal, WIRE_TAG, type Handle } from '../handles.ts';
import { classNamed } from './classes.ts';
import { kMaxDepth } from './format.ts';
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

/** The key of a marker for an instance of a registered class: `{ [CLASS_KEY]: name, value }`. */
const CLASS_KEY = '\u0000mpthreads.class';

export interface Cloned {
  value: unknown;
  /** The copy holds handle records or class markers: the receiver revives it. */
  revive: boolean;
  handles: Handle[];
  /** The caller's transfer list, and the ports of the handles' records. */
  transfer: unknown[];
}

/**
 * Copies `value` for postMessage (see above). Throws what structured clone would (DataCloneError, or what a
 * getter threw), with no handle touched; handles are marshalled only once the whole value is copied.
 */
export function cloneForPost(
  value: unknown,
  transfer: readonly unknown[] | undefined,
  isHandle: (v: object) => boolean,
): Cloned {
  const cloner = new Cloner(transfer, isHandle);
  let copy: unknown;
  try {
    copy = cloner.clone(value);
  } catch (error) {
    if (error instanceof RangeError && /call stack/i.test(error.message))
      throw dataCloneError('the value is nested too deeply to be cloned.');
    throw error;
  }
  const out: Cloned = {
    value: copy,
    revive: cloner.revive,
    handles: [],
    transfer: transfer === undefined ? [] : [...transfer],
  };
  for (const [handle, record] of cloner.handles) {
    Object.assign(record, (handle as Handle)[kMarshal](out.transfer));
    out.handles.push(handle as Handle);
  }
  return out;
}

class Cloner {
  readonly seen = new Map<object, unknown>();
  /** Each handle met, and the record object standing in for it in the copy (filled in once marshalled). */
  readonly handles = new Map<object, Record<string, unknown>>();
  readonly #transfer: ReadonlySet<unknown> | null;
  readonly #isHandle: (v: object) => boolean;
  revive = false;
  #depth = 0;

  constructor(transfer: readonly unknown[] | undefined, isHandle: (v: object) => boolean) {
    this.#transfer = transfer !== undefined && transfer.length > 0 ? new Set(transfer) : null;
    this.#isHandle = isHandle;
  }

  clone(x: unknown): unknown {
    switch (typeof x) {
      case 'number':
      case 'string':
      case 'boolean':
      case 'undefined':
      case 'bigint':
        return x;
      case 'object': {
        if (x === null) return null;
        const seen = this.seen.get(x);
        if (seen !== undefined) return seen;
        if (isProxy(x)) throw uncloneable(x);
        if (this.#transfer?.has(x) === true) return x;
        const proto = Object.getPrototypeOf(x);
        if (proto === ObjectProto || proto === null) {
          refusePlainExotic(x, proto);
          const copy = proto === null ? (Object.create(null) as Record<string, unknown>) : {};
          this.seen.set(x, copy);
          this.#properties(x as Record<string, unknown>, copy);
          return copy;
        }
        if (proto === ArrayProto && Array.isArray(x)) return this.#array(x);
        return this.#special(x, proto);
      }
      default:
        throw uncloneable(x); // symbol, function
    }
  }

  #enter(): void {
    if (++this.#depth > kMaxDepth)
      throw dataCloneError(`the value is nested more than ${kMaxDepth} levels deep and cannot be cloned.`);
  }

  /** Copies the own enumerable properties of `x` into `copy`, each read once; a key deleted meanwhile is left out. */
  #properties(x: Record<string, unknown>, copy: Record<string, unknown>, keys = Object.keys(x)): void {
    this.#enter();
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const v = x[key];
      if (v === undefined && !Object.hasOwn(x, key)) continue;
      const c = this.clone(v);
      if (key === '__proto__')
        Object.defineProperty(copy, key, { value: c, writable: true, enumerable: true, configurable: true });
      else copy[key] = c;
    }
    this.#depth--;
  }

  #array(x: unknown[]): unknown[] {
    const length = x.length;
    const keys = Object.keys(x);
    if (keys.length === length && (length === 0 || keys[length - 1] === String(length - 1))) {
      const copy = new Array<unknown>(length);
      this.seen.set(x, copy);
      this.#enter();
      for (let i = 0; i < length; i++) {
        const e = x[i];
        // A getter met earlier may have deleted or truncated this index: a hole, as structured clone leaves.
        if (e === undefined && !(i in x)) continue;
        copy[i] = this.clone(e);
      }
      this.#depth--;
      return copy;
    }
    // Sparse, or with extra properties: copy what it holds, whatever its length.
    const copy = new Array<unknown>(length);
    this.seen.set(x, copy);
    this.#properties(x as unknown as Record<string, unknown>, copy as unknown as Record<string, unknown>, keys);
    return copy;
  }

  #special(x: object, proto: object): unknown {
    const { kind, registered } = specialKind(x, proto, this.#isHandle);
    switch (kind) {
      case Special.Registered: {
        this.revive = true;
        const marker: Record<string, unknown> = { [CLASS_KEY]: registered!.name };
        this.seen.set(x, marker);
        this.#enter();
        if (registered!.serialize !== undefined) {
          marker.data = this.clone(registered!.serialize(x));
        } else {
          const props: Record<string, unknown> = {};
          this.#properties(x as Record<string, unknown>, props);
          marker.props = props;
        }
        this.#depth--;
        return marker;
      }
      case Special.Handle: {
        this.revive = true;
        const record: Record<string, unknown> = {};
        this.handles.set(x, record);
        this.seen.set(x, record);
        return record;
      }
      case Special.Map: {
        const copy = new Map<unknown, unknown>();
        this.seen.set(x, copy);
        this.#enter();
        for (const [k, v] of Map.prototype.entries.call(x) as IterableIterator<[unknown, unknown]>)
          copy.set(this.clone(k), this.clone(v));
        this.#depth--;
        return copy;
      }
      case Special.Set: {
        const copy = new Set<unknown>();
        this.seen.set(x, copy);
        this.#enter();
        for (const v of Set.prototype.values.call(x) as IterableIterator<unknown>) copy.add(this.clone(v));
        this.#depth--;
        return copy;
      }
      case Special.PlainLike: {
        const copy: Record<string, unknown> = {};
        this.seen.set(x, copy);
        this.#properties(x as Record<string, unknown>, copy);
        return copy;
      }
      default:
        // Leaves the platform copies as structured clone does, without running user code.
        this.seen.set(x, x);
        return x;
    }
  }
}

/**
 * Turns the handle records and class markers of a received copy back into handles and instances, in place
 * (arrays, plain objects, Maps and Sets walked; what the value holds, whatever an array's length).
 */
export function revive(value: unknown, reviveHandle: (record: unknown) => unknown): unknown {
  const done = new Map<object, unknown>();
  const visit = (v: unknown): unknown => {
    if (typeof v !== 'object' || v === null) return v;
    const prior = done.get(v);
    if (prior !== undefined) return prior;
    const proto = Object.getPrototypeOf(v);
    if (proto === ObjectProto || proto === null) {
      const record = v as Record<string, unknown>;
      if (typeof record[WIRE_TAG] === 'string') {
        const handle = reviveHandle(record);
        done.set(v, handle);
        return handle;
      }
      if (typeof record[CLASS_KEY] === 'string') return reviveInstance(record);
      done.set(v, v);
      for (const key of Object.keys(record)) record[key] = visit(record[key]);
      return v;
    }
    done.set(v, v);
    if (Array.isArray(v)) {
      for (const key of Object.keys(v))
        (v as unknown as Record<string, unknown>)[key] = visit((v as unknown as Record<string, unknown>)[key]);
    } else if (v instanceof Map) {
      const entries = [...v];
      v.clear();
      for (const [k, e] of entries) v.set(visit(k), visit(e));
    } else if (v instanceof Set) {
      const entries = [...v];
      v.clear();
      for (const e of entries) v.add(visit(e));
    }
    return v;
  };
  const reviveInstance = (marker: Record<string, unknown>): unknown => {
    const registered = classNamed(marker[CLASS_KEY] as string);
    if (marker.data !== undefined || 'data' in marker) {
      const data = visit(marker.data);
      const instance = registered?.deserialize !== undefined ? registered.deserialize(data) : data;
      done.set(marker, instance);
      return instance;
    }
    const instance = (registered === undefined ? {} : Object.create(registered.prototype)) as Record<string, unknown>;
    done.set(marker, instance);
    const props = marker.props as Record<string, unknown>;
    for (const key of Object.keys(props)) {
      const c = visit(props[key]);
      if (key === '__proto__')
        Object.defineProperty(instance, key, { value: c, writable: true, enumerable: true, configurable: true });
      else instance[key] = c;
    }
    return instance;
  };
  return visit(value);
}
