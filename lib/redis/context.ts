// A connection to a Redis server as a context (Python's get_context()): it opens queues by name. It owns the
// link (two connections at most), the thread's consumer name in every queue's group, the blocking reader, and
// one StreamQueue per queue opened, shared by that queue's handles in this thread.
//
// Invariants:
//   One consumer name per context, unique across processes and machines (host, pid, the process's nonce,
//     thread, random). What a
//     consumer of a thread that died (terminated, process.exit()) held is given back by the thread that started
//     it, from every context of that thread (reclaimDead), once the worker's 'exit' came.
//   A handle that arrives from another thread is opened through this thread's context for its URL, made on
//   first need and shared (contextFor); those contexts are flushed and closed when a worker's task ends.
//   After close(), every call of the context and of its handles rejects with ClosedError.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { threadId } from 'node:worker_threads';
import { isMainThread, noteToParent, onChildExit, onChildNote, onTaskEnd } from '../context.ts';
import { isDead, processNonce } from '../sync/threads.ts';
import { ClosedError, ErrorCode, ProcessError } from '../errors.ts';
import { checkOptions } from '../options.ts';
import { kLostAfter, Link } from './link.ts';
import {
  bind,
  checkQueueArgs,
  RedisJoinableQueue,
  RedisQueue,
  type RedisJoinableQueueOptions,
  type RedisQueueKind,
  type RedisQueueOptions,
  type RedisQueueRecord,
  RedisSimpleQueue,
  setRedisQueueReviver,
} from './queues.ts';
import { BlockingReader } from './reader.ts';
import { StreamQueue, type UnackedEntries } from './stream-queue.ts';

/**
 * Every consumer name of this process starts so, then its thread's id (see RedisContext.#consumer). The nonce
 * tells it from another process with the same host name and pid (two containers, each node as pid 1).
 */
let processConsumers: string | undefined;
function consumerPrefix(): string {
  // The nonce starts with a letter: a copy of the library from before it read a number there as a thread id.
  processConsumers ??= `${hostname()}:${process.pid}:n${processNonce().toString(36)}:`;
  return processConsumers;
}

/** Whether `consumer` is another thread's of this process, one that has died (or whose parent has). */
function isDeadConsumer(consumer: string): boolean {
  const prefix = consumerPrefix();
  if (!consumer.startsWith(prefix)) return false;
  const thread = Number.parseInt(consumer.slice(prefix.length), 10);
  return thread !== threadId && isDead(thread);
}

let making: { url: string; link: Promise<Link> } | undefined;
function newContext(url: string, link: Promise<Link>): RedisContext {
  making = { url, link };
  try {
    return new RedisContext();
  } finally {
    making = undefined;
  }
}

/** Options of connect(): none yet (the URL says everything: host, port, user, password, database). */
export type ConnectOptions = Record<string, never>;

/** Queues on one Redis server. Made by `connect(url)`. */
export class RedisContext {
  /** The server's URL as given (messages show it without the password). */
  readonly url: string;
  readonly #link: Promise<Link>;
  readonly #consumer = `${consumerPrefix()}${threadId}:${randomBytes(4).toString('hex')}`;
  #reader: Promise<BlockingReader> | undefined;
  readonly #queues = new Map<string, StreamQueue>();
  readonly #handles = new Set<{ close(): Promise<void> }>();
  /** Handles closed whose queues are still sending what they buffered. */
  readonly #detaching = new Set<Promise<void>>();
  #closed = false;
  #closing: Promise<void> | undefined;

  /** Use connect(url). */
  constructor() {
    if (making === undefined) throw new TypeError('make a context with connect(url)');
    this.url = making.url;
    this.#link = making.link;
    this.#link.catch(() => {});
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** A FIFO queue named `name` on the server: every process that opens the name shares it. */
  Queue<T = unknown>(name: string, options?: RedisQueueOptions): RedisQueue<T> {
    return this.open('Queue', name, options, () => new RedisQueue<T>());
  }

  /** A queue whose consumers mark items done; at least once, with leases (`visibilityTimeout`). */
  JoinableQueue<T = unknown>(name: string, options?: RedisJoinableQueueOptions): RedisJoinableQueue<T> {
    return this.open('JoinableQueue', name, options, () => new RedisJoinableQueue<T>());
  }

  /** Python's SimpleQueue: put, get, empty, close. */
  SimpleQueue<T = unknown>(name: string, ...none: []): RedisSimpleQueue<T> {
    // Python's SimpleQueue takes no options: one passed anyway is a TypeError, not silently ignored.
    return this.open('SimpleQueue', name, (none as unknown[])[0], () => new RedisSimpleQueue<T>());
  }

  /**
   * Closes every queue opened here (what they buffered is sent first: the promise resolves after) and the
   * connections. Later calls
   * reject with ClosedError. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const h of [...this.#handles]) void h.close();
      await Promise.allSettled([...this.#detaching]);
      this.#closed = true;
      live.delete(this);
      if (this.#reader !== undefined) (await this.#reader.catch(() => undefined))?.stop();
      const link = await this.#link.catch(() => undefined);
      await link?.close();
    })();
    return this.#closing;
  }

  /** @internal Opens a handle of `kind` (for a handle that arrived from another thread too). */
  open<Q extends { close(): Promise<void> }>(
    kind: RedisQueueKind,
    name: unknown,
    options: unknown,
    make: () => Q,
    revived = false,
  ): Q {
    const { maxsize, visibilityTimeout, explicitVisibility } = checkQueueArgs(kind, name, options);
    if (this.#closed || this.#closing !== undefined) throw new ClosedError('the context is closed');
    const joinable = kind === 'JoinableQueue';
    const key = `${joinable ? 'joinable' : 'plain'}:${name as string}`;
    let state = this.#queues.get(key);
    // What this context learned from the server already is said at the call, as Python raises at the open: the
    // same name open with another maxsize, or as the other kind. Otherwise the handle's first call says it, as
    // it does for a handle rebuilt from a message or Process args (whose decoding must not fail for it).
    const mismatch = revived ? undefined : state?.mismatchKnown(maxsize);
    if (mismatch !== undefined) throw mismatch;
    const other = revived ? undefined : this.#queues.get(`${joinable ? 'plain' : 'joinable'}:${name as string}`);
    if (other?.isOpen === true) {
      throw new ProcessError(
        `queue "${name as string}" is a ${joinable ? 'Queue' : 'JoinableQueue'} here already; open it as one`,
        ErrorCode.QueueMismatch,
      );
    }
    if (state === undefined) {
      state = new StreamQueue(
        this.#link,
        this.#consumer,
        () => (this.#reader ??= this.#link.then((link) => new BlockingReader(link, this.#consumer))),
        name as string,
        joinable ? 'joinable' : 'plain',
        { maxsize, visibilityTimeout, explicitVisibility },
        (q) => {
          if (this.#queues.get(key) === q) this.#queues.delete(key);
        },
      );
      this.#queues.set(key, state);
    }
    const source = {
      url: this.url,
      get closed() {
        return context.#closed;
      },
      forget: (handle: { close(): Promise<void> }, detached: Promise<void>) => {
        this.#handles.delete(handle);
        this.#detaching.add(detached);
        detached.catch(() => {}).finally(() => this.#detaching.delete(detached));
      },
    };
    const context = this;
    const handle = bind({ source, state, kind, maxsize, ready: () => state.check(maxsize) }, make);
    this.#handles.add(handle);
    return handle;
  }

  /**
   * @internal Gives back what the dead threads of this process held in the queues opened here (see
   * StreamQueue.reclaimFrom). Errors are dropped: the orphan claim is still there to find it later.
   */
  reclaimDead(acks: readonly (UnackedEntries & { url: string })[] = []): void {
    const mine = acks.filter((a) => a.url === this.url);
    for (const q of this.#queues.values()) q.reclaimFrom(isDeadConsumer, mine).catch(() => {});
  }

  /** @internal What this context's queues delivered and have not had acknowledged (see noteUnacknowledged()). */
  unacknowledged(): (UnackedEntries & { url: string })[] {
    const out: (UnackedEntries & { url: string })[] = [];
    for (const q of this.#queues.values()) {
      const entries = q.unacknowledged();
      if (entries !== undefined) out.push({ ...entries, url: this.url });
    }
    return out;
  }

  /**
   * @internal Sends what every queue opened here owes the server (puts, acknowledgements, read-ahead). Not
   * once the server has been gone kLostAfter ms: nothing can be sent, and 'beforeExit', which comes again
   * after each try, would keep a program that forgot close() alive for good.
   */
  async settleAll(): Promise<void> {
    const link = await this.#link.catch(() => undefined);
    if (link === undefined || link.lostFor() >= kLostAfter) return;
    await Promise.allSettled([...this.#queues.values()].map((q) => q.settle()));
  }
}

/**
 * Connects to the Redis server at `url` (`redis://[user:password@]host:port[/db]`). Rejects with a
 * ConnectionError naming the URL when the server cannot be reached (within a few seconds, never a hang).
 */
export async function connect(url: string, options?: ConnectOptions): Promise<RedisContext> {
  checkOptions(options, 'options', []);
  const link = await Link.open(url);
  const context = newContext(url, Promise.resolve(link));
  track(context);
  return context;
}

// ---- the end of a task, of the program, and handles that arrive from another thread ------------------------

const threadContexts = new Map<string, RedisContext>();
/** Every context of this thread not closed yet. */
const live = new Set<RedisContext>();

/**
 * What a context owes the server is sent when a worker's task ends (the thread exits right after) and when
 * the program runs out of work without close() ('beforeExit': what was read ahead goes back for others); the
 * contexts a worker opened for handles that arrived are closed at its task's end.
 */
let listening = false;
function track(context: RedisContext): void {
  if (!listening) {
    listening = true;
    // A worker this thread started is gone: what it read from queues open here goes back at once, but for what
    // it had delivered (or finished) without the acknowledgement going out, which it noted as it exited.
    onChildNote(kUnackedNote, (thread, data) => unackedOf.set(thread, data as (UnackedEntries & { url: string })[]));
    onChildExit((thread) => {
      const acks = unackedOf.get(thread) ?? [];
      unackedOf.delete(thread);
      for (const c of live) c.reclaimDead(acks);
    });
    if (!isMainThread) process.on('exit', noteUnacknowledged);
    if (isMainThread) process.on('beforeExit', settleLive);
    else
      onTaskEnd(async () => {
        await settleLive();
        await Promise.allSettled([...threadContexts.values()].map((c) => c.close()));
      });
  }
  live.add(context);
}

/** The note a worker leaves its parent as it exits: what it delivered and had not had acknowledged. */
const kUnackedNote = 'redis-unacknowledged';
/** Notes of workers this thread started that exited, until their 'exit' (which comes right after). */
const unackedOf = new Map<number, (UnackedEntries & { url: string })[]>();

/** From 'exit' (process.exit(), an uncaught error; not terminate()): a socket cannot be written any more. */
function noteUnacknowledged(): void {
  const entries = [...live].flatMap((c) => c.unacknowledged());
  if (entries.length > 0) noteToParent(kUnackedNote, entries);
}

let settling = false;
async function settleLive(): Promise<void> {
  // 'beforeExit' comes again once this is done; with nothing left to send, nothing new is scheduled.
  if (settling) return;
  settling = true;
  try {
    await Promise.allSettled([...live].map((c) => c.settleAll()));
  } finally {
    settling = false;
  }
}

/** This thread's context for `url`, connecting on first need. */
function contextFor(url: string): RedisContext {
  let context = threadContexts.get(url);
  if (context === undefined || context.closed) {
    context = newContext(url, Link.open(url));
    threadContexts.set(url, context);
    track(context);
  }
  return context;
}

setRedisQueueReviver((record: RedisQueueRecord) => {
  const context = contextFor(record.url);
  const options: Record<string, number> = {};
  if (record.maxsize !== undefined) options.maxsize = record.maxsize;
  if (record.kind === 'JoinableQueue') options.visibilityTimeout = record.visibilityTimeout;
  const make: () => { close(): Promise<void> } =
    record.kind === 'Queue'
      ? () => new RedisQueue()
      : record.kind === 'JoinableQueue'
        ? () => new RedisJoinableQueue()
        : () => new RedisSimpleQueue();
  return context.open(record.kind, record.name, record.kind === 'SimpleQueue' ? undefined : options, make, true);
});
