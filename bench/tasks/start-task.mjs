// The start case's JavaScript task module, run by bench/start-js.mjs under plain node: it imports the
// built package (as a user's JavaScript would) and sends one message as soon as its target runs.
// biome-ignore lint/suspicious/noTsIgnore: dist/ exists only after `npm run build` (an expect-error would fail once it does).
// @ts-ignore -- dist/ exists only after `npm run build`; the bench builds it before using this file.
import { currentProcess } from '../../dist/lib/mpthreads.js';

/** @param {import('../../lib/index.ts').Connection<string>} conn */
export function startTask(conn) {
  conn.send(`up ${currentProcess().pid}`);
  conn.close();
}
