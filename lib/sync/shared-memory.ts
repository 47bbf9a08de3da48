// Value, RawValue, SharedArray and RawArray (Python's multiprocessing.sharedctypes): numbers in a
// SharedArrayBuffer that every thread holding them reads and writes in place. The one place where state is
// shared on purpose.
//
// Invariants:
//   The memory is never copied: a value or array sent to another thread carries its SharedArrayBuffer, and
//   the receiver wraps the same bytes with the same typecode (and the same lock).
//   A Value's `.value` takes its lock for each read and each write, as Python's synchronized wrapper does;
//   `v.value += 1` is two of them, so it is not atomic: hold getLock() around it.
//   A SharedArray is a typed array (indexing is V8's own, unlocked: one element is one memory access);
//   getLock() guards what spans several accesses. Its methods that make new arrays (map, slice, ...) make
//   plain typed arrays, not shared ones.
import { inspect } from 'node:util';
import { describe } from '../errors.ts';
import { isHandle, kAbort, kCommit, kMarshal, WIRE_TAG } from '../handles.ts';
import { Lock, RLock, type AcquireOptions } from './lock.ts';
import {
  checkCount,
  kKind,
  kState,
  markReachable,
  nestedState,
  Primitive,
  registerPrimitive,
  reviveNested,
  takeAdopted,
  type NestedState,
  type PrimitiveRecord,
} from './primitive.ts';
import { adoptDeadThreads, deadThreads } from './threads.ts';
import { registerHandle } from '../handles.ts';

const arrays = {
  b: Int8Array,
  B: Uint8Array,
  h: Int16Array,
  H: Uint16Array,
  i: Int32Array,
  I: Uint32Array,
  l: Int32Array,
  L: Uint32Array,
  q: BigInt64Array,
  Q: BigUint64Array,
  f: Float32Array,
  d: Float64Array,
} as const;

/** Python's typecodes: `b B h H i I` 8-32-bit integers, `l L` 32-bit, `q Q` 64-bit (bigint), `f d` floats. */
export type Typecode = keyof typeof arrays;

/** The typed array a typecode stores its numbers in. */
export type TypedArrayOf<T extends Typecode> = InstanceType<(typeof arrays)[T]>;
/** What a typecode's numbers are in JavaScript: `bigint` for `q`/`Q`, else `number`. */
export type ElementOf<T extends Typecode> = T extends 'q' | 'Q' ? bigint : number;
/** What a typecode's numbers may be given as: `q`/`Q` take safe integers too. */
/** What a Value or an array's initial values take: a bool too, as ctypes (True is 1). */
export type InputOf<T extends Typecode> = T extends 'q' | 'Q' ? bigint | number | boolean : number | boolean;

/** A typed array of `typecode`'s type over `buffer`. */
function view<T extends Typecode>(typecode: T, buffer: SharedArrayBuffer): TypedArrayOf<T> {
  return new (arrays[typecode] as unknown as new (buffer: ArrayBufferLike) => TypedArrayOf<T>)(buffer);
}

function checkTypecode(typecode: unknown): Typecode {
  if (typeof typecode !== 'string' || !Object.hasOwn(arrays, typecode)) {
    throw new TypeError(`typecode must be one of ${Object.keys(arrays).join(' ')}, got ${describe(typecode)}`);
  }
  return typecode as Typecode;
}

function checkElement(typecode: Typecode, value: unknown, name: string): number | bigint {
  const big = typecode === 'q' || typecode === 'Q';
  // As ctypes: a bool is an int (Python's own tests do Value('i', False)).
  if (typeof value === 'boolean') return big ? BigInt(+value) : +value;
  if (big && typeof value === 'number' && Number.isSafeInteger(value)) return BigInt(value);
  if (big ? typeof value !== 'bigint' : typeof value !== 'number') {
    throw new TypeError(
      `${name} must be a ${big ? 'bigint' : 'number'} for typecode '${typecode}', got ${describe(value)}`,
    );
  }
  // As Python's ctypes: an integer typecode takes integers only (1.5 or NaN would be truncated silently).
  if (!big && typecode !== 'f' && typecode !== 'd' && !Number.isInteger(value)) {
    throw new TypeError(`${name} must be an integer for typecode '${typecode}', got ${describe(value)}`);
  }
  return value as number | bigint;
}

function makeLock(option: unknown): Lock | RLock | undefined {
  if (option === undefined || option === null || option === true) return new RLock();
  if (option === false) return undefined;
  if (option instanceof Lock || option instanceof RLock) return option;
  throw new TypeError(`options.lock must be true, false, a Lock or an RLock, got ${describe(option)}`);
}

function checkLockOptions(options: unknown): LockOption | undefined {
  if (options === undefined) return undefined;
  if (typeof options !== 'object' || options === null)
    throw new TypeError(`options must be an object, got ${describe(options)}`);
  for (const key of Object.keys(options)) {
    if (key !== 'lock') throw new TypeError(`options: unknown option "${key}" (takes "lock")`);
  }
  return (options as { lock?: LockOption }).lock;
}

/** A number in shared memory without a lock (what `RawValue()` makes; Python's `RawValue`). */
class RawNumber<T extends Typecode = Typecode> extends Primitive {
  readonly #typecode: T;
  readonly #cell: TypedArrayOf<T>;

  constructor(typecode: T, initial?: InputOf<T>) {
    super();
    const adopted = takeAdopted<{ typecode: T; buffer: SharedArrayBuffer }>();
    if (adopted !== undefined) {
      this.#typecode = adopted.typecode;
      this.#cell = view(adopted.typecode, adopted.buffer);
      return;
    }
    this.#typecode = checkTypecode(typecode) as T;
    this.#cell = view(this.#typecode, new SharedArrayBuffer(arrays[this.#typecode].BYTES_PER_ELEMENT));
    if (initial !== undefined) this.#cell[0] = checkElement(this.#typecode, initial, 'initial') as never;
  }

  get [kKind](): string {
    return 'RawValue';
  }

  [kState](): Record<string, unknown> {
    return { typecode: this.#typecode, buffer: this.#cell.buffer };
  }

  /** The typecode this value was made with. */
  get typecode(): T {
    return this.#typecode;
  }

  /** The number, read and written in place (a plain memory access: no lock). */
  get value(): ElementOf<T> {
    return this.#cell[0] as ElementOf<T>;
  }
  set value(value: InputOf<T>) {
    this.#cell[0] = checkElement(this.#typecode, value, 'value') as never;
  }

  /** @internal The memory itself, for the Value that wraps this one. */
  cell(): TypedArrayOf<T> {
    return this.#cell;
  }

  /** `<RawValue typecode='i' value=3>`, as Python shows `c_int(3)`. */
  [inspect.custom](): string {
    return `<RawValue typecode=${inspect(this.#typecode)} value=${inspect(this.value)}>`;
  }
}
registerPrimitive('RawValue', () => new RawNumber('b'));

/** A number in shared memory guarded by a lock (what `Value()` makes; Python's `Synchronized`). */
class SynchronizedNumber<T extends Typecode = Typecode> extends Primitive {
  readonly #raw: RawNumber<T>;
  readonly #lock: Lock | RLock;

  constructor(typecode: T, initial?: InputOf<T>, lock?: Lock | RLock) {
    super();
    const adopted = takeAdopted<{ raw: NestedState; lock: NestedState }>();
    if (adopted !== undefined) {
      this.#raw = reviveNested(adopted.raw);
      this.#lock = reviveNested(adopted.lock);
      return;
    }
    this.#raw = new RawNumber(typecode, initial);
    this.#lock = lock ?? new RLock();
  }

  get [kKind](): string {
    return 'Value';
  }

  [kState](): Record<string, unknown> {
    return { raw: nestedState(this.#raw), lock: nestedState(this.#lock) };
  }

  /** The typecode this value was made with. */
  get typecode(): T {
    return this.#raw.typecode;
  }

  /** The number. Each read and each write takes the lock; `v.value += 1` needs getLock() around it. */
  get value(): ElementOf<T> {
    this.#lock.acquireSync();
    try {
      return this.#raw.value;
    } finally {
      this.#lock.release();
    }
  }
  set value(value: InputOf<T>) {
    this.#lock.acquireSync();
    try {
      this.#raw.value = value;
    } finally {
      this.#lock.release();
    }
  }

  /**
   * `<Value typecode='i' value=3>`. Read without the lock, as Python's repr of a Synchronized reads it: showing a
   * value must not wait for another thread.
   */
  [inspect.custom](): string {
    return `<Value typecode=${inspect(this.#raw.typecode)} value=${inspect(this.#raw.value)}>`;
  }

  /** The lock that guards the value (an RLock unless another was given). */
  getLock(): Lock | RLock {
    return this.#lock;
  }

  /** Takes the value's lock, as Python's `v.acquire()`: getLock().acquire(). */
  acquire(options?: AcquireOptions): Promise<boolean> {
    return this.#lock.acquire(options);
  }

  /** As acquire(), blocking: getLock().acquireSync(). */
  acquireSync(options?: Omit<AcquireOptions, 'signal'>): boolean {
    return this.#lock.acquireSync(options);
  }

  /** Releases the value's lock: getLock().release(). */
  release(): void {
    this.#lock.release();
  }

  /** Releases the lock: `counter.acquireSync(); using _ = counter;` holds it to the end of the block. */
  [Symbol.dispose](): void {
    this.#lock.release();
  }

  /** The memory itself: a typed array of one element, for Atomics or unlocked access (Python's `get_obj()`). */
  getObj(): TypedArrayOf<T> {
    return this.#raw.cell();
  }
}
registerPrimitive('Value', () => new SynchronizedNumber('b'));

/** What `Value()` makes: a number in shared memory with a lock. */
export type Value<T extends Typecode = Typecode> = SynchronizedNumber<T>;
/** What `RawValue()` makes: a number in shared memory without a lock. */
export type RawValue<T extends Typecode = Typecode> = RawNumber<T>;

/** A Value's `lock` option: true or omitted (null too) makes an RLock, false none (a RawValue), or the lock to use. */
export type LockOption = boolean | null | Lock | RLock;

/** `Value(typecode, initial?, { lock }?)`, with or without `new`. */
export interface ValueConstructor {
  <T extends Typecode>(typecode: T, initial: InputOf<T> | undefined, options: { lock: false }): RawValue<T>;
  <T extends Typecode>(typecode: T, initial?: InputOf<T>, options?: { lock?: LockOption }): Value<T>;
  new <T extends Typecode>(typecode: T, initial: InputOf<T> | undefined, options: { lock: false }): RawValue<T>;
  new <T extends Typecode>(typecode: T, initial?: InputOf<T>, options?: { lock?: LockOption }): Value<T>;
  readonly prototype: Value;
}
/** `RawValue(typecode, initial?)`, with or without `new`. */
export interface RawValueConstructor {
  <T extends Typecode>(typecode: T, initial?: InputOf<T>): RawValue<T>;
  new <T extends Typecode>(typecode: T, initial?: InputOf<T>): RawValue<T>;
  readonly prototype: RawValue;
}

/**
 * A number in shared memory, with a lock (Python's `multiprocessing.Value`): `.value` reads and writes it,
 * `getLock()` guards several steps, `getObj()` is the memory. `{ lock: false }` makes a RawValue instead.
 *
 * @example
 * const counter = Value('i', 0);
 * counter.getLock().acquireSync();
 * try { counter.value += 1; } finally { counter.getLock().release(); }
 */
export const Value = function Value(typecode: Typecode, initial?: number | bigint, options?: unknown) {
  const lock = makeLock(checkLockOptions(options));
  return lock === undefined ? new RawNumber(typecode, initial) : new SynchronizedNumber(typecode, initial, lock);
} as ValueConstructor;
(Value as { prototype: unknown }).prototype = SynchronizedNumber.prototype;

/** A number in shared memory without a lock (Python's `RawValue`): `.value` reads and writes it in place. */
export const RawValue = function RawValue(typecode: Typecode, initial?: number | bigint) {
  return new RawNumber(typecode, initial);
} as RawValueConstructor;
(RawValue as { prototype: unknown }).prototype = RawNumber.prototype;

// ---- arrays ----

const kLock: unique symbol = Symbol('mpthreads.sharedArray.lock');
const kTypecode: unique symbol = Symbol('mpthreads.sharedArray.typecode');

/** A typed array in shared memory, with the lock that guards it (Python's synchronized `Array`). */
export type SharedArray<T extends Typecode = Typecode> = TypedArrayOf<T> & {
  /** The lock that guards the array (an RLock unless another was given). */
  getLock(): Lock | RLock;
  /** Takes the array's lock, as Python's `a.acquire()`: getLock().acquire(). */
  acquire(options?: AcquireOptions): Promise<boolean>;
  /** As acquire(), blocking: getLock().acquireSync(). */
  acquireSync(options?: Omit<AcquireOptions, 'signal'>): boolean;
  /** Releases the array's lock: getLock().release(). */
  release(): void;
  /** Releases the lock: `a.acquireSync(); using _ = a;` holds it to the end of the block. */
  [Symbol.dispose](): void;
  /** The memory itself, as a plain typed array (Python's `get_obj()`). */
  getObj(): TypedArrayOf<T>;
  readonly typecode: T;
};

type SharedArrayInstance = ArrayBufferView & { [kLock]: Lock | RLock | undefined; [kTypecode]: Typecode };

// One subclass per typed array type, made on first use: instances index as fast as the typed array does and
// travel as handles (kMarshal), so the receiver gets the same memory and the same lock.
const subclasses = new Map<
  Typecode,
  new (
    buffer: SharedArrayBuffer,
    lock: Lock | RLock | undefined,
  ) => SharedArrayInstance
>();

function subclassOf(typecode: Typecode) {
  let Subclass = subclasses.get(typecode);
  if (Subclass !== undefined) return Subclass;
  const Base = arrays[typecode] as unknown as new (buffer: SharedArrayBuffer) => ArrayBufferView;
  class SharedArrayOf extends Base {
    declare [kLock]: Lock | RLock | undefined;
    declare [kTypecode]: Typecode;
    constructor(buffer: SharedArrayBuffer, lock: Lock | RLock | undefined) {
      super(buffer);
      // Not enumerable: console.log() shows the elements, as it does a typed array's.
      Object.defineProperty(this, kLock, { value: lock });
      Object.defineProperty(this, kTypecode, { value: typecode });
    }
    static get [Symbol.species]() {
      return Base;
    }
    get typecode(): Typecode {
      return this[kTypecode];
    }
    getLock(): Lock | RLock {
      return this[kLock]!;
    }
    acquire(options?: AcquireOptions): Promise<boolean> {
      return this[kLock]!.acquire(options);
    }
    acquireSync(options?: Omit<AcquireOptions, 'signal'>): boolean {
      return this[kLock]!.acquireSync(options);
    }
    release(): void {
      this[kLock]!.release();
    }
    [Symbol.dispose](): void {
      this[kLock]!.release();
    }
    getObj(): ArrayBufferView {
      return new Base(this.buffer as SharedArrayBuffer);
    }
    [kMarshal]() {
      const record: PrimitiveRecord = {
        [WIRE_TAG]: 'SharedArray',
        state: {
          typecode,
          buffer: this.buffer,
          lock: this[kLock] === undefined ? undefined : nestedState(this[kLock]),
        },
        threads: deadThreads(),
      };
      markReachable(record.state);
      return record;
    }
    [kCommit]() {}
    [kAbort]() {}
  }
  Object.defineProperty(SharedArrayOf, 'name', { value: `SharedArray<${typecode}>` });
  Subclass = SharedArrayOf;
  subclasses.set(typecode, Subclass);
  return Subclass;
}

function makeArray(typecode: unknown, sizeOrValues: unknown, lock: Lock | RLock | undefined): SharedArrayInstance {
  const code = checkTypecode(typecode);
  const Base = arrays[code];
  let values: unknown[] | undefined;
  let length: number;
  if (typeof sizeOrValues === 'number') {
    length = checkCount(sizeOrValues, 'size', 0);
  } else if (typeof sizeOrValues === 'object' && sizeOrValues !== null && Symbol.iterator in sizeOrValues) {
    values = [...(sizeOrValues as Iterable<unknown>)];
    length = values.length;
  } else {
    throw new TypeError(`sizeOrValues must be a length or an iterable of numbers, got ${describe(sizeOrValues)}`);
  }
  const array = new (subclassOf(code))(new SharedArrayBuffer(length * Base.BYTES_PER_ELEMENT), lock);
  if (values !== undefined) {
    const typed = array as unknown as Record<number, unknown>;
    for (let i = 0; i < length; i++) typed[i] = checkElement(code, values[i], `sizeOrValues[${i}]`);
  }
  return array;
}

registerHandle('SharedArray', (wire) => {
  const record = wire as PrimitiveRecord;
  adoptDeadThreads(record.threads);
  const state = record.state as { typecode: Typecode; buffer: SharedArrayBuffer; lock?: NestedState };
  const lock = state.lock === undefined ? undefined : reviveNested<Lock | RLock>(state.lock);
  return new (subclassOf(state.typecode))(state.buffer, lock);
});

/** Makes a SharedArray: `SharedArray('d', 10)` or `SharedArray('i', [1, 2, 3])`, `new` optional. */
export interface SharedArrayConstructor {
  <T extends Typecode>(
    typecode: T,
    sizeOrValues: number | Iterable<InputOf<T>>,
    options: { lock: false },
  ): TypedArrayOf<T>;
  new <T extends Typecode>(
    typecode: T,
    sizeOrValues: number | Iterable<InputOf<T>>,
    options: { lock: false },
  ): TypedArrayOf<T>;
  <T extends Typecode>(
    typecode: T,
    sizeOrValues: number | Iterable<InputOf<T>>,
    options?: { lock?: LockOption },
  ): SharedArray<T>;
  new <T extends Typecode>(
    typecode: T,
    sizeOrValues: number | Iterable<InputOf<T>>,
    options?: { lock?: LockOption },
  ): SharedArray<T>;
}
/** Makes a RawArray: a typed array in shared memory, without a lock. */
export interface RawArrayConstructor {
  <T extends Typecode>(typecode: T, sizeOrValues: number | Iterable<InputOf<T>>): TypedArrayOf<T>;
  new <T extends Typecode>(typecode: T, sizeOrValues: number | Iterable<InputOf<T>>): TypedArrayOf<T>;
}

/**
 * An array of numbers in shared memory, with a lock (Python's `multiprocessing.Array`; the name `Array` would
 * shadow the global): a typed array (`a[i]`, `length`, iteration) with `getLock()` and `getObj()`.
 */
export const SharedArray = function SharedArray(typecode: Typecode, sizeOrValues: unknown, options?: unknown) {
  const lock = makeLock(checkLockOptions(options));
  const array = makeArray(typecode, sizeOrValues, lock);
  return lock === undefined ? view(array[kTypecode], array.buffer as SharedArrayBuffer) : array;
} as unknown as SharedArrayConstructor;
Object.defineProperty(SharedArray, Symbol.hasInstance, {
  value: (x: unknown) => typeof x === 'object' && x !== null && kTypecode in x && isHandle(x),
});

/**
 * An array of numbers in shared memory without a lock (Python's `RawArray`): a plain typed array over a
 * SharedArrayBuffer, which structured clone itself shares.
 */
export const RawArray = function RawArray(typecode: Typecode, sizeOrValues: unknown) {
  return SharedArray(typecode, sizeOrValues as number, { lock: false });
} as unknown as RawArrayConstructor;
