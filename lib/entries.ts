// The worker entry points (a Process's worker, the queue hub) are kept off the public module: each registers
// itself here when its module loads, on globalThis under a registered symbol, and workers/bootstrap.mjs
// calls `registry[boot.entry]` after importing the runtime. The first registration of a name in a thread
// wins, so a second copy of the library loaded later (say a task module importing dist/ beside lib/)
// cannot replace the entry the bootstrap is about to call.
import type { BootData } from './protocol.ts';

/** The names workers/bootstrap.mjs may be told to call (BootData's `entry`). */
export type EntryName = 'process' | 'hub' | 'pool';

type Entry = (boot: BootData) => unknown;

const kEntries = Symbol.for('mpthreads.entries');
type GlobalWithEntries = typeof globalThis & { [kEntries]?: Partial<Record<EntryName, Entry>> };

/** @internal Makes `entry` callable by the bootstrap as `name`, unless this thread registered one already. */
export function registerEntry(name: EntryName, entry: Entry): void {
  const registry = ((globalThis as GlobalWithEntries)[kEntries] ??= {});
  registry[name] ??= entry;
}
