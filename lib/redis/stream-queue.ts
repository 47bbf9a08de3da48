// One queue on the server, as one thread sees it: every handle of the same name opened through the same
// context shares this object (its put buffer, its read-ahead, its waiting gets). The items live in a Redis
// stream read through one consumer group (scripts.ts says how items are counted).
//
// Invariants:
//   Puts reach the server in put order, one batch in flight at a time, so each producer's items stay FIFO.
//   An unbounded put resolves once buffered; a bounded one once the server took it (there was room).
//   Waiting gets are served in the order they were made, from `ready` (entries read and not yet delivered).
//   A Queue item is acknowledged and deleted right after it is delivered, and never read again: exactly once.
//   A JoinableQueue item stays in this consumer's pending list (leased) until taskDone() deletes it; a live
//   holder renews its leases, and a dead one's are claimed by another consumer's sweep after
//   `visibilityTimeout`: at least once.
//   Whatever waits (a get, a bounded put, a join, an unsent batch) holds the link, so the process stays alive
//   for it; nothing else does.
import { ClosedError, Empty, ErrorCode, Full, ProcessError, TimeoutError } from '../errors.ts';
import { wait, type Waiter } from '../wait.ts';
import { decodeItemBytes, encodeItem } from './codec.ts';
import type { Link } from './link.ts';
import type { BlockingReader } from './reader.ts';
import { DONE, GIVE_BACK, kGroup, metaKey, OPEN, PUT, RETIRE, SIZE, streamKey, TOUCH } from './scripts.ts';

export type StreamKind = 'plain' | 'joinable';

/** An entry as read: its id, and the item's bytes. */
export interface Entry {
  id: string;
  bytes: Buffer;
}

/** What a handle owns in the shared state: its leases (oldest first) and whether it is closed. */
export interface Owner {
  leases: string[];
  closed: boolean;
}

interface GetWaiter {
  waiter: Waiter<unknown>;
  owner: Owner;
}

interface PendingPut {
  bytes: Buffer;
  seq: number;
  owner: Owner;
  /** A bounded put's caller, until the server took the item (unbounded puts resolved at once). */
  waiter?: Waiter<void>;
  deadline?: number;
  signal?: AbortSignal | undefined;
  nowait?: boolean;
}

/** Most items in one batch sent to the server. */
const kBatchItems = 1_000;
/** A batch this large (bytes) is sent at once rather than when the thread yields. */
const kBatchBytes = 512 << 10;
/** Most items read ahead for one thread's gets. */
const kMaxReadAhead = 256;
/** How long join() and a put on a full queue wait between two looks at the server, at most. */
const kMaxPoll = 25;

export class StreamQueue {
  readonly name: string;
  readonly key: string;
  readonly kind: StreamKind;
  /** As the opener asked (undefined: whatever the queue has); the server's once opened. */
  maxsize: number;
  readonly visibilityTimeout: number;
  readonly opened: Promise<void>;
  readonly #link: Promise<Link>;
  readonly #consumer: string;
  readonly #reader: () => Promise<BlockingReader>;
  readonly #onEmpty: (q: StreamQueue) => void;
  #linkNow: Link | undefined;
  #handles = 0;
  #closed = false;

  // The get side.
  readonly #ready: Entry[] = [];
  readonly #waiters: GetWaiter[] = [];
  #filling = false;
  #readAhead = 1;
  #lastSweep = 0;
  #sweepCursor = '0-0';
  /** Entries this consumer holds (read ahead, or leased to a handle): renewed while we live. */
  readonly #held = new Set<string>();
  #renewTimer: NodeJS.Timeout | undefined;
  /** Delivered Queue items to acknowledge and delete, sent once per turn. */
  #taken: string[] = [];

  // The put side.
  readonly #puts: PendingPut[] = [];
  #putBytes = 0;
  #seq = 0;
  /** Every put up to this one is on the server. */
  #landed = 0;
  #sending = false;
  #sendScheduled = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #fullPoll = 1;
  readonly #flushWaiters: { seq: number; resolve(): void; reject(error: unknown): void }[] = [];

  constructor(
    link: Promise<Link>,
    consumer: string,
    reader: () => Promise<BlockingReader>,
    name: string,
    kind: StreamKind,
    maxsize: number | undefined,
    visibilityTimeout: number,
    onEmpty: (q: StreamQueue) => void,
  ) {
    this.name = name;
    this.key = streamKey(name);
    this.kind = kind;
    this.maxsize = maxsize ?? 0;
    this.visibilityTimeout = visibilityTimeout;
    this.#link = link;
    this.#consumer = consumer;
    this.#reader = reader;
    this.#onEmpty = onEmpty;
    this.opened = this.#open(maxsize);
    // A failure is every call's to report; it is not unhandled meanwhile.
    this.opened.catch(() => {});
  }

  async #open(maxsize: number | undefined): Promise<void> {
    const link = await this.#link;
    this.#linkNow = link;
    const [stored, kind] = await link.script<[string, string]>(
      OPEN,
      [this.key, metaKey(this.name)],
      [maxsize === undefined ? '' : String(maxsize), this.kind],
    );
    const storedMaxsize = Number(stored);
    if (kind !== this.kind)
      throw new ProcessError(
        `queue "${this.name}" on ${link.shown} is a ${kind === 'joinable' ? 'JoinableQueue' : 'Queue'}; open it as one`,
        ErrorCode.QueueMismatch,
      );
    if (maxsize !== undefined && storedMaxsize !== maxsize)
      throw new ProcessError(
        `queue "${this.name}" on ${link.shown} has maxsize ${storedMaxsize}, not ${maxsize} (maxsize belongs to the queue: the first opener set it)`,
        ErrorCode.QueueMismatch,
      );
    this.maxsize = storedMaxsize;
  }

  attach(): Owner {
    this.#handles++;
    const owner = { leases: [], closed: false };
    this.#owners.add(owner);
    return owner;
  }

  // ---- put ----------------------------------------------------------------------------------------------

  /** Captures `item` now (DataCloneError: nothing added). */
  put(owner: Owner, item: unknown, timeout: number, signal: AbortSignal | undefined, nowait: boolean): Promise<void> {
    let bytes: Buffer;
    try {
      bytes = encodeItem(item);
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    const put: PendingPut = { bytes, seq: ++this.#seq, owner };
    // Unbounded (or not yet known to be bounded, and buffered until it is): resolved once buffered.
    if (this.maxsize === 0) {
      this.#buffer(put);
      return Promise.resolve();
    }
    if (nowait && this.#puts.some((p) => p.waiter !== undefined)) return Promise.reject(new Full()); // puts ahead of it already wait for room
    put.nowait = nowait;
    put.signal = signal;
    put.deadline = nowait ? 0 : Date.now() + timeout;
    return wait<void>(
      (waiter) => {
        put.waiter = waiter;
        this.#buffer(put);
        return () => {
          if (!waiter.committed) this.#unbuffer(put);
        };
      },
      nowait ? Infinity : timeout,
      signal,
      () => new Full(),
    );
  }

  #buffer(put: PendingPut): void {
    this.#puts.push(put);
    this.#putBytes += put.bytes.length;
    if (this.#puts.length === 1) this.#hold();
    if (this.#putBytes >= kBatchBytes || this.#puts.length >= kBatchItems) this.#send();
    else if (!this.#sendScheduled) {
      this.#sendScheduled = true;
      setImmediate(() => {
        this.#sendScheduled = false;
        this.#send();
      });
    }
  }

  #unbuffer(put: PendingPut): void {
    const i = this.#puts.indexOf(put);
    if (i < 0) return;
    this.#puts.splice(i, 1);
    this.#putBytes -= put.bytes.length;
    if (this.#puts.length === 0) this.#release();
    this.#settleFlushes();
  }

  /** Sends the oldest buffered puts, unless a batch is on its way already. */
  #send(): void {
    if (this.#sending || this.#puts.length === 0) return;
    this.#sending = true;
    void this.#sendBatch();
  }

  async #sendBatch(): Promise<void> {
    let batch: PendingPut[] = [];
    try {
      try {
        await this.opened;
        const link = this.#linkNow!;
        batch = this.#puts.slice(0, kBatchItems);
        for (const p of batch) if (p.waiter !== undefined) p.waiter.committed = true;
        const added = await link.script<number>(PUT, [this.key], [String(this.maxsize), ...batch.map((p) => p.bytes)]);
        this.#landedBatch(batch, added);
      } finally {
        this.#sending = false;
      }
    } catch (error) {
      for (const p of batch) if (p.waiter !== undefined) p.waiter.committed = false;
      this.#failedBatch(error);
      return;
    }
    if (this.#puts.length === 0) return;
    if (this.#puts[0]!.waiter !== undefined && this.#fullPoll > 1) {
      // The queue is full: look again soon (the gets that make room are in other processes).
      this.#retryLater(this.#fullPoll);
    } else queueMicrotask(() => this.#send());
  }

  #landedBatch(batch: PendingPut[], added: number): void {
    // The batch was the head of the buffer, and its puts are committed: nothing removed them meanwhile.
    const landed = this.#puts.splice(0, added);
    for (const p of landed) {
      this.#putBytes -= p.bytes.length;
      p.waiter?.resolve();
    }
    if (landed.length > 0) this.#landed = Math.max(this.#landed, landed[landed.length - 1]!.seq);
    if (landed.length > 0 && this.#puts.length === 0) this.#release();
    for (let i = added; i < batch.length; i++) {
      const p = batch[i]!;
      // No room for it (a bounded queue): it waits, unless it was not to wait or its time is up.
      const w = p.waiter;
      if (w === undefined) continue; // put before the queue was known to be bounded: it waits, resolved
      w.committed = false;
      if (p.nowait || (p.deadline !== undefined && Date.now() >= p.deadline)) {
        this.#unbuffer(p);
        w.reject(new Full());
      } else if (p.signal?.aborted) {
        this.#unbuffer(p);
        w.reject(p.signal.reason);
      }
    }
    if (added < batch.length) this.#fullPoll = Math.min(this.#fullPoll * 2, kMaxPoll);
    else this.#fullPoll = 1;
    if (this.#puts.length === 0) this.#landed = this.#seq;
    else this.#landed = Math.max(this.#landed, this.#puts[0]!.seq - 1);
    this.#settleFlushes();
  }

  #failedBatch(error: unknown): void {
    // Nothing of the batch is known to be on the server: it stays buffered, first, and is sent again when the
    // server is back. flush() says what happened; bounded puts still wait (until their timeout).
    if (this.#closed) return;
    for (const f of this.#flushWaiters.splice(0)) f.reject(error);
    if (error instanceof ProcessError && error.code === ErrorCode.QueueMismatch) {
      for (const p of this.#puts.splice(0)) p.waiter?.reject(error);
      this.#putBytes = 0;
      this.#release();
      return;
    }
    this.#retryLater(250);
  }

  #retryLater(ms: number): void {
    if (this.#retryTimer !== undefined || this.#closed) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#send();
    }, ms);
  }

  #settleFlushes(): void {
    const landed = this.#puts.length === 0 ? this.#seq : Math.min(this.#landed, this.#puts[0]!.seq - 1);
    while (this.#flushWaiters.length > 0 && this.#flushWaiters[0]!.seq <= landed) this.#flushWaiters.shift()!.resolve();
  }

  /** Resolves once every put made so far is on the server. */
  async flush(): Promise<void> {
    if (this.#puts.length === 0) {
      await this.opened;
      return;
    }
    const seq = this.#seq;
    const done = new Promise<void>((resolve, reject) => this.#flushWaiters.push({ seq, resolve, reject }));
    if (this.#retryTimer !== undefined) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    }
    this.#send();
    this.#hold();
    try {
      await done;
    } finally {
      this.#release();
    }
  }

  /** Items on the server not yet gotten (this thread's buffered puts are sent first). */
  async size(): Promise<number> {
    await this.flush();
    return await this.#linkNow!.script<number>(SIZE, [this.key], []);
  }

  // ---- get ----------------------------------------------------------------------------------------------

  get(owner: Owner, timeout: number, signal: AbortSignal | undefined): Promise<unknown> {
    if (this.#waiters.length === 0 && this.#ready.length > 0) {
      try {
        return Promise.resolve(this.#deliver(owner, this.#ready.shift()!));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    // This thread's own puts go first, so that it gets what it put.
    this.#send();
    return wait<unknown>(
      (waiter) => {
        const entry = { waiter, owner };
        this.#waiters.push(entry);
        if (this.#waiters.length === 1) this.#hold();
        this.#fill();
        return () => this.#removeWaiter(entry);
      },
      timeout,
      signal,
      () => new Empty(),
    );
  }

  /** One look at the server: the oldest item, or Empty. Gets already waiting here go first. */
  async getNowait(owner: Owner): Promise<unknown> {
    if (this.#waiters.length > 0) throw new Empty();
    if (this.#ready.length === 0) {
      this.#send();
      await this.opened;
      if (this.#ready.length === 0) await this.#read(1);
      if (this.#ready.length === 0 || this.#waiters.length > 0) throw new Empty();
    }
    return this.#deliver(owner, this.#ready.shift()!);
  }

  #removeWaiter(entry: GetWaiter): void {
    const i = this.#waiters.indexOf(entry);
    if (i < 0) return;
    this.#waiters.splice(i, 1);
    if (this.#waiters.length === 0) {
      this.#release();
      this.#reader().then(
        (r) => r.stopWanting(this),
        () => {},
      );
    }
  }

  /** Hands `entry` to a get of `owner`: a Queue item is taken for good, a JoinableQueue one leased. */
  #deliver(owner: Owner, entry: Entry): unknown {
    if (this.kind === 'plain') {
      this.#held.delete(entry.id);
      // Acknowledged once per turn of the event loop: a loop of gets costs one round trip per read, not per item.
      if (this.#taken.push(entry.id) === 1) setImmediate(() => this.#take());
    } else owner.leases.push(entry.id);
    return decodeItemBytes(entry.bytes);
  }

  #take(): void {
    const ids = this.#taken;
    this.#taken = [];
    const link = this.#linkNow!;
    // Two commands of one pipeline: nothing else reads a Queue's pending list, so no script is needed.
    this.#hold();
    Promise.all([link.call(['XACK', this.key, kGroup, ...ids]), link.call(['XDEL', this.key, ...ids])])
      .catch(() => {
        // The server is gone: the entries stay in our pending list, never delivered again (exactly once).
      })
      .finally(() => this.#release());
  }

  /** Serves waiting gets from `ready`, oldest first. */
  #serve(): void {
    while (this.#waiters.length > 0 && this.#ready.length > 0) {
      const { waiter, owner } = this.#waiters.shift()!;
      if (this.#waiters.length === 0) this.#release();
      waiter.committed = true;
      let value: unknown;
      try {
        value = this.#deliver(owner, this.#ready.shift()!);
      } catch (error) {
        waiter.reject(error);
        continue;
      }
      waiter.resolve(value);
    }
  }

  /** Waiting gets and nothing ready: read what the server has, or wait for it on the blocking read. */
  #fill(): void {
    if (this.#filling || this.#closed) return;
    this.#serve();
    if (this.#waiters.length === 0) return;
    this.#filling = true;
    this.#readNow().then(
      (got) => {
        this.#filling = false;
        this.#serve();
        if (this.#waiters.length === 0) return;
        if (got) this.#fill();
        else
          this.#reader().then(
            (r) => r.want(this),
            (error) => this.#failWaiters(error),
          );
      },
      (error) => {
        this.#filling = false;
        this.#failWaiters(error);
      },
    );
  }

  async #readNow(): Promise<boolean> {
    await this.opened;
    if (this.kind === 'joinable' && Date.now() - this.#lastSweep >= this.#sweepEvery()) {
      if ((await this.sweep(this.#waiters.length)) > 0) return true;
    }
    return (await this.#read(Math.max(this.#waiters.length, this.#readAhead))) > 0;
  }

  /** Reads up to `count` new entries without blocking; a full read reads more ahead next time. */
  async #read(count: number): Promise<number> {
    const reply = await this.#linkNow!.call<StreamReply | null>(
      ['XREADGROUP', 'GROUP', kGroup, this.#consumer, 'COUNT', String(count), 'STREAMS', this.key, '>'],
      true,
    );
    const entries = reply === null ? [] : parseEntries(reply[0]![1]);
    this.#readAhead = entries.length === count ? Math.min(count * 2, kMaxReadAhead) : 1;
    this.arrived(entries);
    return entries.length;
  }

  /** Entries read for this queue (by #read, or by the blocking reader). */
  arrived(entries: Entry[]): void {
    if (entries.length === 0) return;
    for (const e of entries) {
      this.#ready.push(e);
      this.#held.add(e.id);
    }
    this.#armRenewal();
    this.#serve();
  }

  /** How many gets wait here (the blocking reader reads up to as many). */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** The blocking reader came back: read again, sweep if due. */
  readEnded(): void {
    this.#fill();
  }

  #sweepEvery(): number {
    return Math.min(Math.max(this.visibilityTimeout / 2, 10), 1_000);
  }

  /** Longest the blocking read may wait before this queue wants to look again (a sweep). */
  get blockFor(): number {
    return this.kind === 'joinable' ? this.#sweepEvery() : 2_000;
  }

  /**
   * JoinableQueue: claims up to `count` entries whose lease ran out (their consumer died, or stopped renewing
   * them), for the gets waiting here. Returns how many.
   */
  async sweep(count: number): Promise<number> {
    this.#lastSweep = Date.now();
    const reply = await this.#linkNow!.call<[Buffer, StreamEntryReply[], unknown]>(
      [
        'XAUTOCLAIM',
        this.key,
        kGroup,
        this.#consumer,
        String(this.visibilityTimeout),
        this.#sweepCursor,
        'COUNT',
        String(Math.max(count, 1)),
      ],
      true,
    );
    this.#sweepCursor = reply[0].toString('latin1');
    const entries = parseEntries(reply[1]);
    if (entries.length > 0) {
      // Older than anything read ahead: first in line.
      for (const e of entries) this.#held.add(e.id);
      this.#ready.unshift(...entries);
      this.#armRenewal();
      this.#serve();
    }
    return entries.length;
  }

  #armRenewal(): void {
    if (this.kind !== 'joinable' || this.#renewTimer !== undefined) return;
    const every = Math.max(Math.floor(this.visibilityTimeout / 3), 5);
    this.#renewTimer = setInterval(() => {
      const ids = [...this.#held];
      for (const id of ids) if (!this.#leased(id) && !this.#ready.some((e) => e.id === id)) this.#held.delete(id);
      if (this.#held.size === 0) {
        clearInterval(this.#renewTimer);
        this.#renewTimer = undefined;
        return;
      }
      this.#linkNow?.script(TOUCH, [this.key], [this.#consumer, '0', ...this.#held]).catch(() => {});
    }, every);
    this.#renewTimer.unref();
  }

  /** Owners' leases, by id: only the handles know them, so held ids are checked against a registry. */
  readonly #owners = new Set<Owner>();
  #leased(id: string): boolean {
    for (const o of this.#owners) if (o.leases.includes(id)) return true;
    return false;
  }

  /** The server stayed away: the waiting gets fail. */
  lost(error: Error): void {
    this.#failWaiters(error);
  }

  #failWaiters(error: unknown): void {
    if (this.#waiters.length === 0) return;
    for (const { waiter } of this.#waiters.splice(0)) waiter.reject(error);
    this.#release();
  }

  /** Rejects the waiting gets and bounded puts of `owner` (closed) with ClosedError. */
  rejectOwner(owner: Owner, error: Error): void {
    for (const w of this.#waiters.filter((w) => w.owner === owner)) w.waiter.reject(error);
    for (const p of this.#puts.filter((p) => p.owner === owner && p.waiter !== undefined && !p.waiter.committed)) {
      this.#unbuffer(p);
      p.waiter!.committed = false;
      p.waiter!.reject(error);
    }
  }

  // ---- JoinableQueue -----------------------------------------------------------------------------------

  async taskDone(owner: Owner): Promise<void> {
    const id = owner.leases.shift();
    if (id === undefined) {
      throw new ProcessError(
        'taskDone() called more times than this handle got items (on a server, a taskDone() marks the oldest item its own handle got)',
        ErrorCode.TaskDoneTooMany,
      );
    }
    this.#held.delete(id);
    this.#hold();
    try {
      await this.#linkNow!.script(DONE, [this.key], [id]);
    } finally {
      this.#release();
    }
  }

  /** Unfinished tasks: items on the server not yet done, and this thread's puts not yet sent. */
  async unfinished(): Promise<number> {
    await this.opened;
    return this.#puts.length + (await this.#linkNow!.call<number>(['XLEN', this.key]));
  }

  async join(timeout: number, signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) throw signal.reason;
    const deadline = Date.now() + timeout;
    let poll = 1;
    this.#hold();
    try {
      await this.flush();
      for (;;) {
        if (this.#closed) throw new ClosedError();
        const n = await this.#linkNow!.call<number>(['XLEN', this.key]);
        if (n === 0 && this.#puts.length === 0) return;
        if (Date.now() >= deadline)
          throw new TimeoutError(`join() timed out after ${timeout} ms with ${n} tasks unfinished`);
        await sleep(Math.min(poll, Math.max(deadline - Date.now(), 0)), signal);
        poll = Math.min(poll * 2, kMaxPoll);
      }
    } finally {
      this.#release();
    }
  }

  // ---- lifetime -----------------------------------------------------------------------------------------

  /** A handle closed: its leases are handed back; the last one out hands back what was read ahead. */
  async detach(owner: Owner): Promise<void> {
    this.rejectOwner(owner, new ClosedError());
    this.#owners.delete(owner);
    const link = this.#linkNow;
    const back = owner.leases.splice(0);
    for (const id of back) this.#held.delete(id);
    if (--this.#handles > 0) {
      if (back.length > 0 && link !== undefined)
        await link.script(TOUCH, [this.key], [this.#consumer, '2147483647', ...back]).catch(() => {});
      return;
    }
    this.#onEmpty(this);
    // What this thread put is delivered, as a local queue's is after close().
    if (this.#puts.length > 0) await this.flush().catch(() => {});
    this.#closed = true;
    clearInterval(this.#renewTimer);
    clearTimeout(this.#retryTimer);
    if (link === undefined) return;
    try {
      const ready = this.#ready.splice(0);
      if (this.kind === 'plain') {
        if (ready.length > 0)
          await link.script(
            GIVE_BACK,
            [this.key],
            ready.flatMap((e) => [e.id, e.bytes]),
          );
      } else {
        const ids = [...back, ...ready.map((e) => e.id)];
        if (ids.length > 0) await link.script(TOUCH, [this.key], [this.#consumer, '2147483647', ...ids]);
      }
      await link.script(RETIRE, [this.key], [this.#consumer]);
    } catch {
      // The server is gone: a JoinableQueue's leases come back after visibilityTimeout anyway.
    }
  }

  #hold(): void {
    if (this.#linkNow !== undefined) this.#linkNow.hold();
    else
      this.#link.then(
        (l) => l.hold(),
        () => {},
      );
  }

  #release(): void {
    if (this.#linkNow !== undefined) this.#linkNow.release();
    else
      this.#link.then(
        (l) => l.release(),
        () => {},
      );
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', abort);
      resolve();
    }
    function abort() {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', abort, { once: true });
  });
}

type StreamEntryReply = [Buffer, Buffer[] | null];
export type StreamReply = [Buffer, StreamEntryReply[]][];

/** Entries of one stream of an XREADGROUP or XAUTOCLAIM reply (a deleted entry has no fields: skipped). */
export function parseEntries(list: StreamEntryReply[]): Entry[] {
  const out: Entry[] = [];
  for (const [id, fields] of list) {
    if (fields === null || fields.length < 2) continue;
    out.push({ id: id.toString('latin1'), bytes: fields[1]! });
  }
  return out;
}
