// The start case under plain node with the built package (run by bench/cases/start.ts after the build):
// raw Worker vs mpthreads Process with a JavaScript task module. Prints one JSON document on stdout.
//   node bench/start-js.mjs [--reps N]
// biome-ignore lint/suspicious/noTsIgnore: dist/ exists only after `npm run build` (an expect-error would fail once it does).
// @ts-ignore -- dist/ exists only after `npm run build`.
import { Pipe, Process } from '../dist/lib/mpthreads.js';
import { measureStarts, repsArg } from './tasks/start-measure.mjs';

const result = await measureStarts({
  Process,
  Pipe,
  taskUrl: new URL('./tasks/start-task.mjs', import.meta.url),
  reps: repsArg(),
  labels: ['raw', 'process-js'],
});
process.stdout.write(`${JSON.stringify({ node: process.version, ...result })}\n`);
