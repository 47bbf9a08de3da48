// Knowing that a thread has nothing left to do: no timer, port or I/O that could settle what it awaits. Node
// would then end it (exit code 13 for a top-level await, or silently) and no one would learn why; what waits
// for such a thing gets ERR_DEADLOCK instead.
//
// Invariants:
//   One 'beforeExit' listener per copy of this module while any watch is on, none once all are off (its
//   setImmediate would keep a dry loop turning for ever); never one per watch (past ten Node warns). A watch is
//   called at most once per dry loop, a step after 'beforeExit', once every listener ran (one of them may
//   schedule more work: a flush on the way out).

/** Each watch, and whether it is a last resort (a whole task's). */
const watches = new Map<() => void, boolean>();

/**
 * How many resources of each kind the thread has (listed ones need not keep it alive: a piped stdout does not).
 * The immediate running this count is not among them; one a listener queued after it is.
 */
function resources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

function onBeforeExit(): void {
  if (watches.size === 0) return;
  // The loop is dry now; the listeners may start something: a resource more than now, then.
  const dry = resources();
  setImmediate(() => {
    for (const [kind, n] of resources()) if (n > (dry.get(kind) ?? 0)) return; // 'beforeExit' comes again
    // The waits first: a task whose wait fails may handle that and go on. Its own watch, only if none was on.
    const waits = [...watches].filter(([, last]) => !last).map(([watch]) => watch);
    const due = waits.length > 0 ? waits : [...watches.keys()];
    for (const onStall of due) if (watches.has(onStall)) onStall();
  });
}

/**
 * Calls `onStall` if the thread is left with nothing that could settle what it awaits (no timer, port or I/O).
 * A `lastResort` watch (a whole target's or task's) is called only when no other is on: the waits inside it
 * fail first, and it may go on. Returns what stops the watch.
 */
export function watchForStall(onStall: () => void, lastResort = false): () => void {
  // First of the listeners: its count of resources must come before any other starts something.
  if (watches.size === 0) process.prependListener('beforeExit', onBeforeExit);
  const watch = () => onStall();
  watches.set(watch, lastResort);
  return () => {
    if (watches.delete(watch) && watches.size === 0) process.off('beforeExit', onBeforeExit);
  };
}
