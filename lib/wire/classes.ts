// Registered classes: instances that arrive as instances (Python's pickle finds a class by its module and
// name; here both threads register it under one name, usually by importing the module that defines it).
// Structured clone alone turns a class instance into a plain object of its own enumerable properties.
import { describe, setErrorClassLookup } from '../errors.ts';
import { checkOptions } from '../options.ts';

/** How a registered class's instances travel. Both are optional: the default copies own enumerable fields. */
export interface ClassOptions<T extends object, D = unknown> {
  /** The name both threads know the class by. @default Class.name */
  name?: string;
  /** Turns an instance into cloneable data (say, to carry private fields); `deserialize` rebuilds it. */
  serialize?: (instance: T) => D;
  /** Rebuilds an instance from what `serialize` returned. Required with `serialize`. */
  deserialize?: (data: D) => T;
}

export interface RegisteredClass {
  name: string;
  prototype: object;
  serialize: ((instance: any) => unknown) | undefined;
  deserialize: ((data: any) => object) | undefined;
}

// Per thread, on globalThis under a registered symbol: every copy of the library loaded in a thread (lib/ and
// a built dist/, say) must see the same registrations.
interface Registry {
  byPrototype: Map<object, RegisteredClass>;
  byName: Map<string, RegisteredClass>;
  warned: Set<string>;
}
const kRegistry = Symbol.for('mpthreads.classes');
const registry: Registry = ((globalThis as Record<symbol, unknown>)[kRegistry] ??= {
  byPrototype: new Map(),
  byName: new Map(),
  warned: new Set(),
}) as Registry;

/**
 * Registers `Class` so that its instances put in a queue, sent through a pipe or passed in `Process` args
 * arrive as instances of it (its prototype restored, its own enumerable fields copied; or through
 * `serialize`/`deserialize`). Call it in every thread that sends or receives them, e.g. at the top level of the
 * module that defines the class, which task modules import. Returns `Class`.
 *
 * @example
 * export class Point { constructor(public x: number, public y: number) {} norm() { return Math.hypot(this.x, this.y); } }
 * registerClass(Point);
 */
const registerKeys = ['name', 'serialize', 'deserialize'] as const;

export function registerClass<C extends abstract new (...args: any[]) => object, D = unknown>(
  Class: C,
  // D: what serialize() returns, which deserialize() takes (inferred from serialize, so neither needs a cast).
  options?: ClassOptions<InstanceType<C>, D>,
): C {
  if (typeof Class !== 'function' || typeof Class.prototype !== 'object' || Class.prototype === null) {
    throw new TypeError(`registerClass() takes a class, got ${describe(Class)}`);
  }
  const o: ClassOptions<InstanceType<C>, D> = checkOptions(options, 'registerClass() options', registerKeys);
  const name = o.name ?? Class.name;
  if (typeof name !== 'string' || name === '')
    throw new TypeError(
      `registerClass(): the class has no name (options.name got ${describe(name)}); pass options.name`,
    );
  if ((o.serialize === undefined) !== (o.deserialize === undefined)) {
    throw new TypeError('registerClass(): options.serialize and options.deserialize go together');
  }
  if (o.serialize !== undefined && typeof o.serialize !== 'function')
    throw new TypeError(`registerClass(): options.serialize must be a function, got ${describe(o.serialize)}`);
  if (o.deserialize !== undefined && typeof o.deserialize !== 'function')
    throw new TypeError(`registerClass(): options.deserialize must be a function, got ${describe(o.deserialize)}`);
  const byName = registry.byName.get(name);
  if (byName !== undefined && byName.prototype !== Class.prototype) {
    throw new TypeError(`registerClass(): another class is already registered as "${name}"; pass options.name`);
  }
  const entry: RegisteredClass = {
    name,
    prototype: Class.prototype,
    serialize: o.serialize,
    deserialize: o.deserialize,
  };
  const byPrototype = registry.byPrototype.get(Class.prototype);
  if (byPrototype !== undefined && byPrototype.name !== name) registry.byName.delete(byPrototype.name);
  registry.byPrototype.set(Class.prototype, entry);
  registry.byName.set(name, entry);
  return Class;
}

/** The registration of objects whose prototype is exactly `prototype`, if any. */
export function classOfPrototype(prototype: object): RegisteredClass | undefined {
  return registry.byPrototype.get(prototype);
}

/** The class registered as `name` in this thread; warns once per name when there is none. */
export function classNamed(name: string): RegisteredClass | undefined {
  const entry = registry.byName.get(name);
  if (entry === undefined && !registry.warned.has(name)) {
    registry.warned.add(name);
    process.emitWarning(
      `an instance of class "${name}" arrived, but no class is registered under that name in this thread: it arrives as a plain object. Call registerClass() in this thread too (import the module that defines the class).`,
      { code: 'MPTHREADS_UNREGISTERED_CLASS' },
    );
  }
  return entry;
}

/** True when some class is registered in this thread (the encoder's fast path skips the lookup otherwise). */
export function anyClassRegistered(): boolean {
  return registry.byPrototype.size > 0;
}

// An error rebuilt by name (errors.ts: deserializeError) becomes an instance of its registered class, if any.
setErrorClassLookup((name) => {
  const entry = registry.byName.get(name);
  return entry !== undefined && entry.prototype instanceof Error ? entry.prototype : undefined;
});
