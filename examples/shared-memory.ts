// Python's "Sharing state between processes: shared memory" example (multiprocessing docs), ported: a worker
// writes a Value and negates an array in place; the main thread reads what it wrote.
import { Process, SharedArray, Value, isMainThread } from '../lib/index.ts';

export function f(n: Value<'d'>, a: SharedArray<'i'>) {
  // biome-ignore lint/suspicious/noApproximativeNumericConstant: the number Python's example writes
  n.value = 3.1415927;
  for (let i = 0; i < a.length; i++) a[i] = -a[i]!;
}

if (isMainThread) {
  const num = Value('d', 0.0);
  const arr = SharedArray(
    'i',
    Array.from({ length: 10 }, (_, i) => i),
  );
  const p = new Process({ target: f, module: import.meta.url, args: [num, arr] });
  p.start();
  await p.join();
  console.log(num.value);
  console.log([...arr]);
}
