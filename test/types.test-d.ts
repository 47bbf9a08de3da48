// Compile-time checks of the public types, run by `tsc --noEmit` (npm test, npm run typecheck), never
// executed (uvu runs *.test.ts only). Each `@ts-expect-error` line must be a type error: were the types loose
// again (args as unknown[]), tsc would fail on the unused directive.
import type { AsyncResult, Pool } from '../lib/index.ts';
import {
  JoinableQueue,
  Pipe,
  Process,
  Queue,
  RawArray,
  registerClass,
  SharedArray,
  Value,
  type Connection,
  type ProcessOptions,
} from '../lib/index.ts';

declare function work(q: Queue<number>, n: number): void;
declare function reply(conn: Connection<string>, times?: number): Promise<void>;
declare function spread(label: string, ...rest: number[]): void;
declare function none(): void;

export function processArgs(): void {
  const q = new Queue<number>();
  const [a] = Pipe<string>();
  const module = import.meta.url;

  // args fit the target's parameters
  new Process({ target: work, module, args: [q, 1] });
  new Process({ target: reply, module, args: [a] });
  new Process({ target: reply, module, args: [a, 3] });
  new Process({ target: spread, module, args: ['x', 1, 2, 3] });
  new Process({ target: none, module });
  new Process({ target: none, module, args: [] });
  new Process({ target: work, module, args: [q, 1] as const }); // a readonly tuple is fine

  // @ts-expect-error a string where the Queue<number> goes
  new Process({ target: work, module, args: ['not a queue', 1, 2, 3] });
  // @ts-expect-error one argument missing
  new Process({ target: work, module, args: [q] });
  // @ts-expect-error one argument too many
  new Process({ target: work, module, args: [q, 1, 2] });
  // @ts-expect-error a Queue of the wrong item type
  new Process({ target: work, module, args: [new Queue<string>(), 1] });
  // @ts-expect-error a JoinableQueue<string> is not a Queue<number>
  new Process({ target: work, module, args: [new JoinableQueue<string>(), 1] });
  // @ts-expect-error a Connection where the Queue goes
  new Process({ target: work, module, args: [a, 1] });
  // @ts-expect-error no args at all for a target that needs two
  new Process({ target: work, module });
  // @ts-expect-error the rest parameters are numbers
  new Process({ target: spread, module, args: ['x', 'y'] });
  // @ts-expect-error a target that takes nothing
  new Process({ target: none, module, args: [1] });

  // A target given by its export's name cannot be checked: any args.
  new Process({ target: 'work', module, args: ['anything', 1, { at: 'all' }] });

  // Options built apart keep their check when typed with the target.
  const options: ProcessOptions<typeof work> = { target: work, module, args: [q, 2] };
  new Process(options);
  // @ts-expect-error args of the wrong type in a typed options object
  const wrong: ProcessOptions<typeof work> = { target: work, module, args: [q, '2'] };
  void wrong;

  // Every Process, whatever its target, is a Process (activeChildren(), arrays of them).
  const all: Process[] = [new Process({ target: work, module, args: [q, 1] }), new Process({ target: 'x', module })];
  void all;
}

// Pool: what comes back is typed from the task function.
export async function poolTypes(pool: Pool): Promise<void> {
  const squares: number[] = await pool.map(square, [1, 2, 3]);
  const lengths: number[] = await pool.map(asyncLength, ['a', 'bb']);
  const one: number = await pool.apply(square, [2]);
  const products: number[] = await pool.starmap(mul, [
    [1, 2],
    [3, 4],
  ]);
  const later: AsyncResult<number> = pool.applyAsync(square, [3]);
  const listed: AsyncResult<number[]> = pool.mapAsync(square, [1]);
  for await (const y of pool.imap(square, [1, 2])) {
    const n: number = y;
    void n;
  }
  // @ts-expect-error map's results are numbers, not strings
  const wrongMap: string[] = await pool.map(square, [1]);
  // @ts-expect-error square takes a number
  await pool.map(square, ['x']);
  // @ts-expect-error apply's args must fit the function's parameters
  await pool.apply(mul, [1, 'two']);
  // @ts-expect-error starmap's items are argument lists
  await pool.starmap(mul, [1, 2]);
  void [squares, lengths, one, products, later, listed, wrongMap];
}
function square(x: number): number {
  return x * x;
}
async function asyncLength(s: string): Promise<number> {
  return s.length;
}
function mul(a: number, b: number): number {
  return a * b;
}

export function sharedMemory(): void {
  const q = Value('q', 1n);
  const big: bigint = q.value;
  const d = Value('d', 0.5);
  const n: number = d.value;
  const raw = Value('i', 0, { lock: false });
  // @ts-expect-error a RawValue (lock: false) has no lock
  raw.getLock();
  const arr = SharedArray('h', [1, 2]);
  const h: Int16Array = arr;
  arr.getLock().acquireSync();
  const plain: Float64Array = RawArray('d', 4);
  // @ts-expect-error a q value is a bigint
  const wrong: number = q.value;
  // @ts-expect-error a string is no typecode
  Value('x', 1);
  void [big, n, h, plain, wrong];
}

// registerClass(): deserialize() takes what serialize() returns, inferred (the README's line, which needed a
// cast while deserialize() took unknown).
class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
}
registerClass(Secret, { serialize: (s) => s.reveal(), deserialize: (v) => new Secret(v) });
// @ts-expect-error deserialize() must take what serialize() returns
registerClass(Secret, { serialize: (s) => s.reveal(), deserialize: (v: number) => new Secret(String(v)) });
