// What kind of thing a value is, for structured clone: the one classification both captures use (encode.ts,
// which writes bytes for queues and Process args, and clone.ts, which makes a copy for a Connection's
// postMessage), so that they agree on what is copied how and what is refused.
import v8 from 'node:v8';
import { types } from 'node:util';
import { anyClassRegistered, classOfPrototype, type RegisteredClass } from './classes.ts';

export function dataCloneError(message: string): DOMException {
  return new DOMException(message, 'DataCloneError');
}

/** What V8 says of a value it cannot clone ("#<Promise> could not be cloned."). */
export function uncloneable(x: unknown): DOMException {
  let what: string;
  if (typeof x === 'function') what = Function.prototype.toString.call(x);
  else if (typeof x === 'symbol') what = x.toString();
  else if (typeof x === 'object' && x !== null && !types.isProxy(x)) {
    const tag = Object.prototype.toString.call(x).slice(8, -1);
    what = tag === 'Symbol' ? '[object Symbol]' : `#<${tag}>`;
  } else what = types.isProxy(x) ? '#<Object>' : String(x);
  return dataCloneError(`${what} could not be cloned.`);
}

export const ObjectProto = Object.prototype;
export const ArrayProto = Array.prototype;

/** The kinds of objects that are neither plain objects nor plain arrays. */
export const Special = {
  /** An instance of a class registered with registerClass(). */
  Registered: 0,
  /** An mpthreads handle (queue, connection). */
  Handle: 1,
  View: 2,
  Date: 3,
  Map: 4,
  Set: 5,
  ArrayBuffer: 6,
  SharedArrayBuffer: 7,
  RegExp: 8,
  Error: 9,
  /** new Number(), new String(), new Boolean(), Object(bigint). */
  Boxed: 10,
  /** What only the platform can copy (a Blob, a MessagePort, ...), or refuse. */
  Host: 11,
  /** A class instance or other object structured clone copies as a plain object of its own properties. */
  PlainLike: 12,
} as const;
export type Special = (typeof Special)[keyof typeof Special];

const {
  isProxy,
  isArgumentsObject,
  isModuleNamespaceObject,
  isDate,
  isRegExp,
  isMap,
  isSet,
  isArrayBuffer,
  isSharedArrayBuffer,
  isArrayBufferView,
  isNativeError,
  isBoxedPrimitive,
  isPromise,
  isWeakMap,
  isWeakSet,
  isGeneratorObject,
  isMapIterator,
  isSetIterator,
  isExternal,
  isSymbolObject,
} = types;

/**
 * Throws DataCloneError for an object structured clone refuses outright before reading it: a Proxy (revoked or
 * not), an arguments object, a module namespace. For plain-looking objects (prototype Object or null).
 */
export function refusePlainExotic(x: object, proto: object | null): void {
  if (proto === ObjectProto ? isArgumentsObject(x) : isModuleNamespaceObject(x)) throw uncloneable(x);
}

export { isProxy };

/** The kind of `x` (not a plain object or array); throws DataCloneError for kinds structured clone refuses. */
export function specialKind(
  x: object,
  proto: object,
  isHandle: ((value: object) => boolean) | undefined,
): { kind: Special; registered?: RegisteredClass } {
  if (anyClassRegistered()) {
    const registered = classOfPrototype(proto);
    if (registered !== undefined) return { kind: Special.Registered, registered };
  }
  if (isHandle?.(x) === true) return { kind: Special.Handle };
  if (isArrayBufferView(x)) return { kind: Special.View };
  if (isDate(x)) return { kind: Special.Date };
  if (isMap(x)) return { kind: Special.Map };
  if (isSet(x)) return { kind: Special.Set };
  if (isArrayBuffer(x)) return { kind: Special.ArrayBuffer };
  if (isSharedArrayBuffer(x)) return { kind: Special.SharedArrayBuffer };
  if (isRegExp(x)) return { kind: Special.RegExp };
  if (isNativeError(x)) return { kind: Special.Error };
  if (isBoxedPrimitive(x)) {
    if (isSymbolObject(x)) throw uncloneable(x);
    return { kind: Special.Boxed };
  }
  if (
    isPromise(x) ||
    isWeakMap(x) ||
    isWeakSet(x) ||
    isGeneratorObject(x) ||
    isMapIterator(x) ||
    isSetIterator(x) ||
    isExternal(x) ||
    x instanceof WeakRef ||
    x instanceof FinalizationRegistry
  ) {
    throw uncloneable(x);
  }
  switch (nature(x, proto)) {
    case 'host':
      return { kind: Special.Host };
    case 'refused':
      throw uncloneable(x);
    default:
      return { kind: Special.PlainLike };
  }
}

// Objects whose prototype is neither plain nor a built-in the captures know (class instances, host objects
// such as Blob, platform objects V8 refuses) are told apart once per prototype, by letting V8 serialize the
// first such object met: V8 calls _writeHostObject first for a host object, refuses an unclonable kind at
// once, and otherwise walks the object as a plain one (which is what the captures then do themselves).
const kIsHost: unique symbol = Symbol('host object');
const kHostInside: unique symbol = Symbol('host object inside');
type Nature = 'plain' | 'host' | 'refused';
const natures = new WeakMap<object, Nature>();

class ProbeSerializer extends v8.Serializer {
  constructor(readonly target: object) {
    super();
  }
  _writeHostObject(object: object): never {
    throw object === this.target ? kIsHost : kHostInside;
  }
  _getSharedArrayBufferId(): number {
    return 0;
  }
}

function nature(x: object, proto: object): Nature {
  const known = natures.get(proto);
  if (known !== undefined) return known;
  let found: Nature = 'plain';
  try {
    const probe = new ProbeSerializer(x);
    probe.writeHeader();
    probe.writeValue(x);
  } catch (error) {
    if (error === kIsHost) found = 'host';
    else if (
      error instanceof Error &&
      error.message.endsWith('could not be cloned.') &&
      error.message.startsWith('#<')
    ) {
      // V8 refused the object itself, or something inside it: only the first is about the prototype. The
      // caller's own walk finds the second (and throws the platform's error for it).
      const inner = error.message.slice(2, error.message.indexOf('>'));
      if (inner === Object.prototype.toString.call(x).slice(8, -1) && inner !== 'Object') found = 'refused';
    }
  }
  natures.set(proto, found);
  return found;
}
