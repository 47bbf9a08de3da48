// The put side of a queue on a server, in one thread: puts are captured at the call, buffered, and sent in
// batches (one PUT script per batch), so that an `await put()` loop costs a round trip per batch, not per item.
//
// Invariants:
//   Puts reach the server in put order, one batch in flight at a time: each producer's items stay FIFO.
//   An unbounded put resolves once buffered; a bounded one once the server took it (there was room), and the
//   puts of an in-flight batch are committed (their timeout and signal wait for the server's answer).
//   A batch that failed (the server was lost) stays first in the buffer and is sent again: a put that resolved
//   is delivered unless the process dies before flush() resolves; flush() is the durability point (of the
//   puts that resolved: it does not wait for a bounded put waiting for room). A put lands
//   once: the server skips the put numbers of this buffer (producerKey) it landed already, in a batch whose
//   answer was lost with its connection (scripts.ts, PUT). A batch given up on for want of an answer (the
//   server stopped answering) may still run: nothing is sent until its answer comes (#unanswered);
//   meanwhile flush() and bounded puts reject.
//   While anything is buffered, the link is held (the process stays alive to send it).
//   A buffer with puts is in `buffering` (one set per thread, every queue and server): a taskDone() of this
//   thread is sent only once the puts made before it landed (putsLanded()), so a join() that sees a task done
//   finds what its worker put before marking it done.
import { randomBytes } from 'node:crypto';
import { ClosedError, ConnectionError, ErrorCode, Full, ProcessError } from '../errors.ts';
import { wait, type Waiter } from '../wait.ts';
import { encodeItem } from './codec.ts';
import { kLostAfter, willAnswerLate, type Link } from './link.ts';
import { PUT, producerKey } from './scripts.ts';

/** Who put an item (a handle): close() rejects its puts still waiting for room. */
export type PutOwner = object;

interface PendingPut {
  bytes: Buffer;
  seq: number;
  owner: PutOwner;
  /** A bounded put's caller, until the server took the item (unbounded puts resolved at once). */
  waiter?: Waiter<void>;
  deadline?: number;
  signal?: AbortSignal | undefined;
  nowait?: boolean;
  /** The server found no room for it: it waits for room (a later putNowait() would overtake it). */
  refused?: boolean;
  /** The maxsize its handle was opened with, if it said: a put of a handle whose queue has another is dropped. */
  expect?: number | undefined;
  /** Its handle closed while it was on its way: it lands, or, refused, rejects with this rather than wait. */
  closedWith?: Error;
}

/** What the buffer needs of its queue. */
export interface PutTarget {
  readonly key: string;
  readonly metaKey: string;
  /** 0: unbounded. Known once `opened` resolved, or when the opener said. */
  readonly maxsize: number;
  readonly known: boolean;
  readonly opened: Promise<void>;
  /** Why a handle opened with maxsize `expect` cannot use the queue (another maxsize), once it is open. */
  mismatch(expect: number | undefined): Error | undefined;
  link(): Link;
  hold(): void;
  release(): void;
}

/** Most items in one batch sent to the server. */
const kBatchItems = 1_000;
/** A batch this large (bytes) is sent at once rather than when the thread yields. */
const kBatchBytes = 512 << 10;
/** How long a put on a full queue waits between two looks at the server, at most (ms). */
const kMaxPoll = 25;

/** This thread's buffers holding puts not yet on the server. */
const buffering = new Set<PutBuffer>();

/**
 * Resolves once every put this thread made so far, on any queue of any server, landed, or waits for room, or
 * failed (a failure is the put's own to report); undefined when nothing is buffered. Sends nothing sooner.
 */
export function putsLanded(): Promise<unknown> | undefined {
  if (buffering.size === 0) return undefined;
  return Promise.allSettled([...buffering].map((b) => b.landedSoFar()));
}

export class PutBuffer {
  readonly #q: PutTarget;
  readonly #puts: PendingPut[] = [];
  #putBytes = 0;
  #seq = 0;
  /** This buffer's key on the server: the number of the last put it landed (scripts.ts, PUT). */
  readonly producerKey: string;
  /** Every put up to this one is on the server. */
  #landed = 0;
  #sending = false;
  #sendScheduled = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #fullPoll = 1;
  #closed = false;
  /** A batch was given up on for want of an answer, and its answer has not come: it may yet land. */
  #unanswered = false;
  readonly #flushWaiters: { seq: number; resolve(): void; reject(error: unknown): void }[] = [];

  constructor(target: PutTarget) {
    this.#q = target;
    this.producerKey = producerKey(target.key, randomBytes(12).toString('base64url'));
  }

  /** Nothing buffered, and no batch whose answer may yet come: nothing of this buffer can be sent again. */
  get idle(): boolean {
    return this.#puts.length === 0 && !this.#unanswered;
  }

  /** Puts buffered and not yet on the server. */
  get length(): number {
    return this.#puts.length;
  }

  /** Captures `item` now (DataCloneError: nothing added). */
  put(
    owner: PutOwner,
    item: unknown,
    timeout: number,
    signal: AbortSignal | undefined,
    nowait: boolean,
    expect?: number,
  ): Promise<void> {
    let bytes: Buffer;
    try {
      bytes = encodeItem(item);
    } catch (error) {
      return Promise.reject(error);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    const put: PendingPut = { bytes, seq: ++this.#seq, owner, expect };
    // Unbounded: resolved once buffered. (Before the queue is open its maxsize may be unknown: then the put
    // resolves once it landed, as a bounded one does.)
    if (this.#q.maxsize === 0 && this.#q.known) {
      this.#buffer(put);
      return Promise.resolve();
    }
    // Puts ahead of it that wait for room: it cannot go in before them. (Puts merely on their way do not count:
    // the server takes them in order, and says Full for this one if it does not fit.)
    if (nowait && this.#puts.some((p) => p.refused === true)) return Promise.reject(new Full());
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
    if (this.#puts.length === 1) this.#holdLink();
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
    if (this.#puts.length === 0) this.#releaseLink();
    this.#settleFlushes();
  }

  /** Sends what is buffered now, rather than when the thread yields (a get of this thread comes next). */
  sendNow(): void {
    if (this.#retryTimer === undefined) this.#send();
  }

  /** Sends the oldest buffered puts, unless a batch is on its way already. */
  #send(): void {
    if (this.#unanswered) {
      this.#failWhileUnanswered();
      return;
    }
    if (this.#sending || this.#puts.length === 0) return;
    this.#sending = true;
    void this.#sendBatch();
  }

  async #sendBatch(): Promise<void> {
    let batch: PendingPut[] = [];
    try {
      try {
        await this.#q.opened;
        this.#dropMismatched();
        if (this.#puts.length === 0) return;
        const link = this.#q.link();
        batch = this.#puts.slice(0, kBatchItems);
        for (const p of batch) if (p.waiter !== undefined) p.waiter.committed = true;
        // Given up on for want of an answer and answered later: what it did is known then.
        const late = (ok: boolean, value: unknown) => this.#answeredLate(batch, ok, value);
        const args: (string | Buffer)[] = [String(this.#q.maxsize)];
        for (const p of batch) args.push(String(p.seq), p.bytes);
        const added = await link.script<number>(
          PUT,
          [this.#q.key, this.#q.metaKey, this.producerKey],
          args,
          false,
          late,
        );
        this.#landedBatch(batch, added);
      } finally {
        this.#sending = false;
      }
    } catch (error) {
      for (const p of batch) if (p.waiter !== undefined) p.waiter.committed = false;
      if (this.#puts.length > 0 && !this.#closed) this.#holdLink();
      if (willAnswerLate(error)) this.#unanswered = true; // its answer, when it comes, says what it did
      this.#failedBatch(error);
      return;
    }
    if (this.#puts.length === 0) return;
    // The queue was full (some of the batch did not fit): look again soon, since the gets that make room run
    // in other processes. Otherwise send what came meanwhile.
    if (this.#fullPoll > 1) this.#retryLater(this.#fullPoll);
    else queueMicrotask(() => this.#send());
  }

  /**
   * Puts of handles opened with another maxsize than the queue has: their handles reject every call
   * (ERR_QUEUE_MISMATCH), so their items must not reach the queue. Taken out before anything is sent.
   */
  #dropMismatched(): void {
    for (const p of this.#puts.filter((p) => p.expect !== undefined)) {
      const mismatch = this.#q.mismatch(p.expect);
      if (mismatch === undefined) continue;
      this.#unbuffer(p);
      p.waiter?.reject(mismatch);
    }
  }

  /** The answer of a batch given up on came: it landed (what the server took) or not, and sending goes on. */
  #answeredLate(batch: PendingPut[], ok: boolean, value: unknown): void {
    this.#unanswered = false;
    if (ok && !this.#closed) this.#landedBatch(batch, value as number);
    if (this.#puts.length > 0) this.#retryLater(1);
  }

  #landedBatch(batch: PendingPut[], added: number): void {
    // The batch was the head of the buffer; after a late answer some of its puts may have left it (rejected).
    const landed = batch.slice(0, added);
    for (const p of landed) {
      const i = this.#puts[0] === p ? 0 : this.#puts.indexOf(p);
      if (i >= 0) {
        this.#puts.splice(i, 1);
        this.#putBytes -= p.bytes.length;
      }
      p.waiter?.resolve();
    }
    if (landed.length > 0) this.#landed = Math.max(this.#landed, landed[landed.length - 1]!.seq);
    if (this.#puts.length === 0) this.#releaseLink();
    else this.#holdLink();
    const buffered = added < batch.length ? new Set(this.#puts) : undefined;
    for (let i = added; i < batch.length; i++) {
      const p = batch[i]!;
      // No room for it (a bounded queue): it waits, unless it was not to wait or its time is up.
      const w = p.waiter;
      if (w === undefined || !buffered!.has(p)) continue; // an unbounded put waits, resolved; a rejected one left
      w.committed = false;
      if (p.closedWith !== undefined) {
        this.#unbuffer(p);
        w.reject(p.closedWith);
      } else if (p.nowait || (p.deadline !== undefined && Date.now() >= p.deadline)) {
        this.#unbuffer(p);
        w.reject(new Full());
      } else if (p.signal?.aborted) {
        this.#unbuffer(p);
        w.reject(p.signal.reason);
      } else p.refused = true;
    }
    if (added < batch.length) this.#fullPoll = Math.min(this.#fullPoll * 2, kMaxPoll);
    else this.#fullPoll = 1;
    if (this.#puts.length === 0) this.#landed = this.#seq;
    else this.#landed = Math.max(this.#landed, this.#puts[0]!.seq - 1);
    this.#settleFlushes();
  }

  #failedBatch(error: unknown): void {
    // Nothing of the batch is known to be on the server: it stays buffered, first, and is sent again when the
    // server is back. flush() says what happened. A bounded put whose time is up fails with Full; once the
    // server has been gone kLostAfter ms, every bounded put fails with the error, and the unbounded ones
    // (resolved already) stop holding the process: they are sent if the server comes back while it runs.
    for (const f of this.#flushWaiters.splice(0)) f.reject(error);
    // Closed for good: nothing is sent again (a joinThread() after close() was told just above), and nothing
    // holds the process for it.
    if (this.#closed) {
      this.#releaseLink();
      return;
    }
    const mismatch = error instanceof ProcessError && error.code === ErrorCode.QueueMismatch;
    // A batch given up on for want of an answer: the server is not answering (it may run the batch later).
    const lost = mismatch || willAnswerLate(error) || this.#q.link().lostFor() >= kLostAfter;
    const now = Date.now();
    for (const p of this.#puts.slice()) {
      const w = p.waiter;
      if (w === undefined) continue;
      if (lost) {
        this.#unbuffer(p);
        w.reject(error);
      } else if (p.deadline !== undefined && now >= p.deadline) {
        this.#unbuffer(p);
        w.reject(new Full());
      } else if (p.signal?.aborted) {
        this.#unbuffer(p);
        w.reject(p.signal.reason);
      }
    }
    if (mismatch) {
      this.#puts.splice(0);
      this.#putBytes = 0;
      this.#releaseLink();
      return;
    }
    if (lost) this.#releaseLink();
    this.#retryLater(250);
  }

  /**
   * A batch is out, unanswered: nothing more is sent until its answer comes. A flush() and the bounded puts
   * not yet sent cannot be answered meanwhile: they reject (the unbounded ones, resolved already, stay).
   */
  #failWhileUnanswered(): void {
    const error = new ConnectionError(
      this.#q.link().shown,
      'no answer yet to a batch of puts sent earlier (the server is stopped, or cut off)',
    );
    for (const f of this.#flushWaiters.splice(0)) f.reject(error);
    for (const p of this.#puts.slice()) {
      if (p.waiter === undefined || p.waiter.committed) continue;
      this.#unbuffer(p);
      p.waiter.reject(error);
    }
    // What stays buffered (resolved puts) is sent once the answer comes, if the program still runs then.
    this.#releaseLink();
  }

  /** As flush() without sending sooner than the buffer would: resolves once the puts made so far landed. */
  landedSoFar(): Promise<void> {
    // With a batch unanswered, nothing settles a flush until something is sent: its puts may never be known.
    // A batch that failed waits to be sent again: its server is failing, and the acknowledgements of a healthy
    // one need not wait for it to come back (each try takes seconds).
    if (
      this.#puts.length === 0 ||
      this.#waitsForRoom() ||
      this.#unanswered ||
      this.#closed ||
      this.#retryTimer !== undefined
    )
      return Promise.resolve();
    const seq = this.#seq;
    return new Promise<void>((resolve, reject) => this.#flushWaiters.push({ seq, resolve, reject }));
  }

  #holding = false;
  #holdLink(): void {
    buffering.add(this);
    if (this.#holding) return;
    this.#holding = true;
    this.#q.hold();
  }

  #releaseLink(): void {
    if (this.#puts.length === 0 || this.#closed) buffering.delete(this);
    if (!this.#holding) return;
    this.#holding = false;
    this.#q.release();
  }

  #retryLater(ms: number): void {
    if (this.#retryTimer !== undefined || this.#closed) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#send();
    }, ms);
    // A retry alone does not keep the process alive: whatever waits for it holds the link.
    this.#retryTimer.unref();
  }

  /** Puts land in order: once the first one left waits for room, every one before it landed. */
  #waitsForRoom(): boolean {
    return this.#puts.length > 0 && this.#puts[0]!.refused === true;
  }

  #settleFlushes(): void {
    const landed =
      this.#puts.length === 0 || this.#waitsForRoom() ? this.#seq : Math.min(this.#landed, this.#puts[0]!.seq - 1);
    while (this.#flushWaiters.length > 0 && this.#flushWaiters[0]!.seq <= landed) this.#flushWaiters.shift()!.resolve();
  }

  /**
   * Resolves once every put made so far is on the server, but for those that wait for room (the server said
   * the queue was full) and those behind them: as a local queue's flush() does not wait for a put blocked on a
   * full queue (a size() or join(), which flush first, waited for a get to make room).
   */
  async flush(): Promise<void> {
    if (this.#puts.length === 0 || this.#waitsForRoom()) {
      await this.#q.opened;
      return;
    }
    const seq = this.#seq;
    const done = new Promise<void>((resolve, reject) => this.#flushWaiters.push({ seq, resolve, reject }));
    if (this.#retryTimer !== undefined) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    }
    this.#send();
    this.#q.hold();
    try {
      await done;
    } finally {
      this.#q.release();
    }
  }

  /**
   * `owner` closed: its puts waiting for room (the server said the queue was full) reject with `error`. Those
   * still on their way (in flight, or buffered before the queue's maxsize was known) go on: each lands, or is
   * refused and rejects with `error` then. A local queue's close() keeps what was put, too.
   */
  rejectOwner(owner: PutOwner, error: Error): void {
    for (const p of this.#puts.filter((p) => p.owner === owner && p.waiter !== undefined)) {
      if (p.refused === true && !p.waiter!.committed) {
        this.#unbuffer(p);
        p.waiter!.reject(error);
      } else p.closedWith = error;
    }
  }

  /** For good: no more retries. */
  close(): void {
    this.#closed = true;
    buffering.delete(this);
    // Nothing more will land: a flush() or a taskDone() waiting for these puts (putsLanded()) must not wait on.
    for (const f of this.#flushWaiters.splice(0)) f.reject(new ClosedError('queue is closed'));
    clearTimeout(this.#retryTimer);
  }
}
