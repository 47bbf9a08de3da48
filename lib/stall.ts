// Knowing that a thread has nothing left to do: no timer, port or I/O that could settle what it awaits. Node
// would then end it (exit code 13 for a top-level await, or silently) and no one would learn why; what waits
// for such a thing gets ERR_DEADLOCK instead.
//
// Invariants:
//   One 'beforeExit' listener per copy of this module while any watch is on, none once all are off (its
//   setImmediate would keep a dry loop turning for ever); never one per watch (past ten Node warns). A watch is
//   called at most once per dry loop, a step after 'beforeExit', once every listener ran (one of them may
//   schedule more work: a flush on the way out), and only for a dry loop that came after it began.

/** Each watch: whether it is a last resort (a whole task's), and the dry loop it began after. */
const watches = new Map<() => void, { last: boolean; since: number }>();
/** Dry loops ('beforeExit') seen. A check is for the watches that began before its loop ran dry. */
let dryLoops = 0;

/**
 * How many resources of each kind the thread has (listed ones need not keep it alive: a piped stdout does not).
 * The immediate running this count is not among them; one a listener queued after it is.
 */
function resources(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

/** The thread has more of some resource than it had when its loop ran dry (`dry`). */
function grew(dry: Map<string, number>): boolean {
  for (const [kind, n] of resources()) if (n > (dry.get(kind) ?? 0)) return true;
  return false;
}

function onBeforeExit(): void {
  if (watches.size === 0) return;
  // The loop is dry now; the listeners may start something: a resource more than now, then.
  const dry = resources();
  const loop = ++dryLoops;
  setImmediate(() => {
    if (grew(dry)) return; // 'beforeExit' comes again
    // The waits first: a task whose wait fails may handle that and go on. Its own watch, only if none is on.
    // Not a wait that began since the loop ran dry (a listener's work ended the waits it was for, and the code
    // went on to wait again): the next dry loop tells about it.
    const waiting = [...watches.values()].some(({ last }) => !last);
    const due = [...watches].filter(([, { last, since }]) => since < loop && (!waiting || !last));
    for (const [onStall] of due) {
      if (!watches.has(onStall)) continue;
      // One before may have found its wait shared now and kept the thread alive for it: not dry any more.
      if (grew(dry)) return;
      onStall();
    }
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
  watches.set(watch, { last: lastResort, since: dryLoops });
  return () => {
    if (watches.delete(watch) && watches.size === 0) process.off('beforeExit', onBeforeExit);
  };
}
