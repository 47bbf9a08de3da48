// Who this thread is: the Process it runs for (name, pid, daemon) and its parent. Kept on globalThis under
// a registered symbol so that every copy of this library loaded in a thread (say, lib/*.ts and a built
// dist/ both imported by a task module) sees the same answer and the same exit hooks.
import { isMainThread, parentPort, threadId } from 'node:worker_threads';
import { Kind, PROTOCOL_TAG } from '../workers/messages.mjs';

/** What `currentProcess()` and `parentProcess()` describe. */
export interface ProcessInfo {
  readonly name: string;
  /** The thread's `threadId` (0 for the main thread). */
  readonly pid: number;
  readonly daemon: boolean;
}

/** @internal What a worker is told about itself when it starts. */
export interface ThreadContext {
  self: ProcessInfo;
  parent: ProcessInfo | null;
  /** Python's `_identity`: the child counters on the path from the main thread; names `Process-1:2`. */
  identity: number[];
}

interface Registry {
  context: ThreadContext;
  childCounter: number;
  /** What flushOnExit() registered, weakly held; `listening` once the 'exit' listener is installed. */
  flushers: Set<WeakRef<Flusher>>;
  listening: boolean;
  /** The task module this worker is importing, until its top level has finished running. */
  importing: string | undefined;
  /** What must finish before a worker's task is over (queues on a server send what they buffer). */
  taskEnd: Set<() => Promise<void>>;
  /** Told the thread id of each worker this thread started, once it has exited (however it ended). */
  childExit?: Set<(threadId: number) => void>;
  /** Told, by topic, what a worker this thread started noted as it exited (noteToParent). */
  childNotes?: Map<string, (threadId: number, data: unknown) => void>;
  /** Queues of this thread with puts not posted yet, in the order of their oldest such put (postBufferedPuts). */
  buffered?: Set<BufferedPuts>;
}

/** @internal A queue holder's put side, as postBufferedPuts() sees it. */
export interface BufferedPuts {
  /** Posts what is buffered now, without waiting for anything. */
  flushPuts(): void;
}

interface Flusher {
  flushOnExit(): void;
  /** Posts what is buffered now, without waiting for anything. */
  flushPuts(): void;
}

const kRegistry = Symbol.for('mpthreads.thread');
type GlobalWithRegistry = typeof globalThis & { [kRegistry]?: Registry };

function registry(): Registry {
  const g = globalThis as GlobalWithRegistry;
  return (g[kRegistry] ??= {
    context: { self: { name: 'MainProcess', pid: threadId, daemon: false }, parent: null, identity: [] },
    childCounter: 0,
    flushers: new Set(),
    listening: false,
    importing: undefined,
    taskEnd: new Set(),
  });
}

/** @internal Called once by the worker bootstrap, before the task module is imported. */
export function setThreadContext(context: ThreadContext): void {
  registry().context = context;
}

/**
 * @internal Set by the worker runtime while it imports its task module (`undefined` once done): the module's
 * top level runs again in every worker, so a Process started there is the missing `isMainThread` guard.
 */
export function setImporting(module: string | undefined): void {
  registry().importing = module;
}

/** @internal The task module this worker is still importing, if any. */
export function importingModule(): string | undefined {
  return registry().importing;
}

/** @internal The identity of the next child this thread starts. */
export function nextChildIdentity(): number[] {
  const r = registry();
  return [...r.context.identity, ++r.childCounter];
}

/**
 * @internal Hands over what `target` buffers when this worker exits, however it exits but terminate():
 * returning, throwing, `process.exit(n)`, an uncaught exception. Node emits 'exit' in a worker for each of
 * those, and what is posted from its listener is delivered (Python flushes its queues at sys.exit() too).
 * Held weakly: a queue no one can reach any more has nothing buffered to lose. Returns how to unregister.
 */
export function flushOnExit(target: Flusher): () => void {
  const r = registry();
  const ref = new WeakRef(target);
  r.flushers.add(ref);
  if (!r.listening && !isMainThread) {
    r.listening = true;
    process.on('exit', flushAll);
  }
  return () => r.flushers.delete(ref);
}

/**
 * @internal `hook` runs when this worker's target has returned or thrown, before the thread exits: for what
 * cannot be handed over synchronously in the 'exit' event (a queue on a server sends over a socket). Returns
 * how to unregister.
 */
export function onTaskEnd(hook: () => Promise<void>): () => void {
  const hooks = registry().taskEnd;
  hooks.add(hook);
  return () => hooks.delete(hook);
}

/**
 * @internal `hook` is told the thread id of every worker this thread started, once that worker has exited,
 * however it ended (terminate() too): for what only a living thread can put right for a dead one (a queue on a
 * server gives back what the dead thread had read). Returns how to unregister.
 */
export function onChildExit(hook: (threadId: number) => void): () => void {
  const hooks = (registry().childExit ??= new Set());
  hooks.add(hook);
  return () => hooks.delete(hook);
}

/**
 * @internal In a worker the library started, from its 'exit' event: posts `data` to the thread that started it,
 * which hands it to its onChildNote(topic) hook before that worker's 'exit' (Node delivers what a worker posted
 * first). For what only the parent can still send (a queue on a server: acknowledgements a socket cannot carry
 * any more). Nothing in the main thread or in a Worker the user started (its parent is not a Process).
 */
export function noteToParent(topic: string, data: unknown): void {
  if (isMainThread || parentPort === null || registry().context.parent === null) return;
  parentPort.postMessage({ [PROTOCOL_TAG]: Kind.Note, topic, data });
}

/** @internal `hook` is told what a worker this thread started noted under `topic` as it exited. */
export function onChildNote(topic: string, hook: (threadId: number, data: unknown) => void): void {
  (registry().childNotes ??= new Map()).set(topic, hook);
}

/** @internal A worker this thread started noted `data` under `topic`. */
export function childNote(threadId: number, topic: string, data: unknown): void {
  try {
    registry().childNotes?.get(topic)?.(threadId, data);
  } catch {
    // The hook reports its own failures: a worker's note must not crash this thread.
  }
}

/** @internal A worker this thread started has exited: runs the onChildExit hooks. */
export function childExited(threadId: number): void {
  for (const hook of registry().childExit ?? []) {
    try {
      hook(threadId);
    } catch {
      // Each hook reports its own failures; one must not keep the others from running.
    }
  }
}

/** @internal Runs the onTaskEnd hooks (their failures are theirs to report). */
export async function runTaskEndHooks(): Promise<void> {
  await Promise.allSettled([...registry().taskEnd].map((hook) => hook()));
}

/**
 * @internal Hands over what every queue of this thread buffers: before the thread blocks (shared-wait.ts), since
 * the handover otherwise waits for a turn of the event loop that a blocked thread does not take.
 */
export function flushAll(): void {
  eachFlusher((flusher) => flusher.flushOnExit());
}

/**
 * @internal Posts what every queue of this thread buffers, before a taskDone() counts: so a thread that sees
 * the task done (its join() resolved) finds what this one put before it, as a getNowait() asks the hub for it.
 */
export function postAllPuts(): void {
  eachFlusher((flusher) => flusher.flushPuts());
}

/** @internal `flusher` holds puts not posted yet (a Set keeps the order of the first call). */
export function markBuffered(flusher: BufferedPuts): void {
  (registry().buffered ??= new Set()).add(flusher);
}

/** @internal `flusher` posted what it held. */
export function unmarkBuffered(flusher: BufferedPuts): void {
  registry().buffered?.delete(flusher);
}

/**
 * @internal Posts what the queues of this thread buffer, oldest put first, up to (not including) `until`: before
 * this thread lets another learn something (a lock released, an event set, a message sent, an item in the
 * hand-off ring), so that the puts it made before are posted first, and the hub numbers them before any put
 * the other thread makes next (queue/hub.ts: intake).
 */
export function postBufferedPuts(until?: BufferedPuts): void {
  const buffered = registry().buffered;
  if (buffered === undefined || buffered.size === 0) return;
  for (const flusher of [...buffered]) {
    if (flusher === until) return;
    try {
      flusher.flushPuts(); // unmarks it once posted
    } catch {
      buffered.delete(flusher); // a port already closed: nothing to hand over
    }
    // One in the middle of encoding an item (a getter's code came here) cannot post yet: the later ones wait too.
    if (buffered.has(flusher)) return;
  }
}

/** Runs `act` on every queue of this thread still reachable. */
function eachFlusher(act: (flusher: Flusher) => void): void {
  for (const ref of registry().flushers) {
    const flusher = ref.deref();
    if (flusher === undefined) continue;
    try {
      act(flusher);
    } catch {
      // A port already closed: nothing to hand over.
    }
  }
}

/** The process (thread) this code runs in: `{ name: 'MainProcess', pid: 0 }` on the main thread. */
export function currentProcess(): ProcessInfo {
  return registry().context.self;
}

/** The process that started this one, or `null` on the main thread. */
export function parentProcess(): ProcessInfo | null {
  return registry().context.parent;
}

/** True on the main thread: guard a module's main code with it (Python's `if __name__ == '__main__'`). */
export { isMainThread };
