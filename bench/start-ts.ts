// The start case under tsx with the TypeScript sources (run by bench/cases/start.ts in a fresh tsx process,
// so the first start is cold): raw Worker vs mpthreads Process with a .ts task module. Under tsx every
// worker, raw ones included, inherits tsx's loader. Prints one JSON document on stdout.
//   tsx bench/start-ts.ts [--reps N]
import { Pipe, Process } from '../lib/index.ts';
import { measureStarts, repsArg } from './tasks/start-measure.mjs';

const result = await measureStarts({
  Process,
  Pipe,
  taskUrl: new URL('./tasks/start-task.ts', import.meta.url),
  reps: repsArg(),
  labels: ['raw-tsx', 'process-ts'],
});
process.stdout.write(`${JSON.stringify({ node: process.version, ...result })}\n`);
