// One queue on the server, as one thread sees it: every handle of the same name opened through the same
// context shares this object (its put buffer, its read-ahead, its waiting gets). The items live in a Redis
// stream read through one consumer group (scripts.ts says how items are counted); the put side is
// put-buffer.ts.
//
// Invariants:
//   Waiting gets are served in the order they were made, from `ready` (entries this consumer read and has not
//   delivered yet); a get that finds nothing waits on the thread's one blocking read (reader.ts).
//   A Queue item is acknowledged and deleted right after it is delivered, and never delivered again: exactly
//   once. A JoinableQueue item stays in this consumer's pending list (leased) until taskDone() deletes it; a
//   live holder renews its leases well within the queue's shortest visibilityTimeout, and a dead holder's are
//   claimed by another consumer's fetch once idle longer than that: at least once.
//   Read-ahead is lent, not kept: entries no get of this thread took within kLinger ms are given back (to the
//   end of the stream, scripts.ts: GIVE_BACK), so a consumer that slows down or stops does not strand items
//   that another consumer waits for, and qsize counts them again. So are they when the thread's task ends,
//   when the program ends without close() ('beforeExit'), and at close(). A bounded queue does not read
//   ahead at all (a read-ahead entry counts as gotten, so another put could pass maxsize meanwhile), and a
//   get of one that gives up (timeout, abort) while a read or fetch is out for it waits for that to come back
//   (the read is ended at once): what it brings goes to a get, the given-up one last, never to the read-ahead
//   (unless the server does not answer within kGiveUpWait: the get gives up then, and what the read brings
//   later is read-ahead).
//   The thread's one read asks no more of any stream than the fewest entries a bounded queue in it wants
//   (reader.ts), so a bounded queue read beside another gets no more than its gets take.
//   What a consumer killed outright held is claimed by another after kOrphanAfter ms (a JoinableQueue's:
//   after its visibilityTimeout); a dead worker thread's, in the queues its starting thread has open, is given
//   back by that thread at once (reclaimFrom), and fetches here wait for that.
//   A read or fetch whose answer was lost with its connection may have taken entries this thread never saw:
//   until a recovery (RECOVER, which knows every id this thread holds) has given those back in place, nothing
//   is delivered, read or fetched here, so they are not left for the orphan claim while newer items pass.
//   An acknowledgement (TAKE, DONE) that fails for want of the server is sent again until the server is taken
//   for lost: a Queue item left pending would be claimed as an orphan and delivered twice.
//   Whatever waits (a get, a join, a buffered put) holds the link, so the process stays alive for it.
import { onAbort } from '../abort.ts';
import { ClosedError, ConnectionError, Empty, ErrorCode, ProcessError, TimeoutError } from '../errors.ts';
import { wait, type Waiter } from '../wait.ts';
import { decodeItemBytes } from './codec.ts';
import { kLostAfter, type Link, willAnswerLate } from './link.ts';
import { PutBuffer, putsLanded } from './put-buffer.ts';
import type { BlockingReader } from './reader.ts';
import {
  DONE,
  FETCH,
  HAND_BACK,
  kGroup,
  metaKey,
  OPEN,
  RECOVER,
  RENEW,
  RETIRE,
  SIZE,
  streamKey,
  TAKE,
} from './scripts.ts';

export type StreamKind = 'plain' | 'joinable';

/** Entries a consumer delivered (or finished) and had not had acknowledged when its thread exited. */
export interface UnackedEntries {
  stream: string;
  consumer: string;
  ids: string[];
}

/** An entry as read: its id, and the item's bytes. */
export interface Entry {
  id: string;
  bytes: Buffer;
}

/** What a handle owns in the shared state: its leases (oldest first) and whether it is closed. */
export interface Owner {
  leases: Entry[];
  /** taskDone() calls waiting to see whether a lost server is back: each will take one lease. */
  acking: number;
  closed: boolean;
}

interface GetWaiter {
  waiter: Waiter<unknown>;
  owner: Owner;
  /** A bounded queue's get that gave up while a read was out for it: what it rejects with if nothing comes. */
  givingUp?: () => unknown;
  giveUpTimer?: NodeJS.Timeout;
}

/** Most entries read ahead for one thread's gets. */
const kMaxReadAhead = { plain: 256, joinable: 64 };
/** How long delivered Queue entries wait to be acknowledged and deleted together (ms). */
const kTakeAfter = 2;
/** While the server is away, a lease is renewed at most this often (ms): see #armRenewal(). */
const kRenewWhileLost = 5_000;

/** A Queue entry read by a consumer that has been silent this long (killed) is claimed by another (ms). */
const kOrphanAfter = 60_000;
/** Read-ahead that no get took for this long goes back to the server (ms). */
const kLinger = 20;
/** Longest a bounded queue's get that gave up waits for the read out for it (ms): the server may hang. */
const kGiveUpWait = 1_000;
/** How long a failed acknowledgement waits before it is sent again (ms): the link may be reconnecting. */
const kAckAgainAfter = 100;
/**
 * Leases are renewed at least this often (ms), whatever the visibilityTimeout: a holder opened before another
 * opener lowered the queue's (1 s, say) learns it at its next renewal, before its leases look expired.
 */
const kRenewAtMost = 500;

/** How long join() waits between two looks at the server, at most (ms). */
const kMaxPoll = 25;

export class StreamQueue {
  readonly name: string;
  readonly key: string;
  readonly kind: StreamKind;
  /** As the opener asked (undefined: whatever the queue has) until opened; then the server's. */
  maxsize: number;
  /** This thread's: how idle another consumer's lease must be before a fetch here takes it over. */
  readonly visibilityTimeout: number;
  #opened: Promise<void>;
  /** The last open failed for want of the server: the next use opens again. */
  #openFailed = false;
  readonly #openOptions: { maxsize: number | undefined; explicitVisibility: boolean };
  readonly #link: Promise<Link>;
  readonly #consumer: string;
  readonly #reader: () => Promise<BlockingReader>;
  readonly #onEmpty: (q: StreamQueue) => void;
  readonly #puts: PutBuffer;
  #linkNow: Link | undefined;
  /** Whether `maxsize` is the queue's (the server said, or the opener did). */
  #known: boolean;
  /** The server answered the open (set once; a later open, after a lost server, finds the same). */
  #answered = false;
  #closed = false;
  readonly #owners = new Set<Owner>();

  readonly #ready: Entry[] = [];
  readonly #waiters: GetWaiter[] = [];
  #filling = false;
  /** The thread's blocking read is out and includes this queue. */
  #inRead = false;
  #readAhead = 1;
  /** Read-ahead entries whose hand-back (HAND_BACK, on #linkNow) has not answered yet. */
  #handingBack = 0;
  /** When this thread last looked for orphaned and expired entries. */
  #lastClaim = 0;
  /** Entries given back and not claimed yet, at the last fetch. */
  #backSeen = 0;
  /**
   * Entries older than some in `ready` (or than what a blocking read brings) may be handed back on the server:
   * this thread gave some back, or a read came while others were. Nothing is delivered from `ready` until a
   * fetch (which claims handed-back entries first) has run since: per-producer FIFO.
   */
  #mustFetch = false;
  /** Counts hand-backs: a fetch sent before the latest one does not clear #mustFetch. */
  #handBacks = 0;
  #lingerTimer: NodeJS.Timeout | undefined;
  /** Delivered Queue items to acknowledge and delete, sent once per turn of the event loop. */
  #taken: string[] = [];
  /** The ids of the acknowledgements (TAKE, DONE) out and not answered yet. */
  readonly #acksOut = new Set<string[]>();
  /**
   * A read or fetch of this queue failed after it may have run (its answer lost with its connection): what it
   * took may sit in this consumer's pending list, unknown here.
   */
  #unknownHeld = false;
  /** The recovery under way (#recover). */
  #recovery: Promise<void> | undefined;
  /** Dead consumers' entries being given back (reclaimFrom): a fetch waits for it, so it claims them first. */
  #reclaiming: Promise<void> | undefined;
  /** The shortest visibilityTimeout any opener gave (the server keeps it): leases are renewed within it. */
  #minVisibility: number;
  #renewTimer: NodeJS.Timeout | undefined;

  constructor(
    link: Promise<Link>,
    consumer: string,
    reader: () => Promise<BlockingReader>,
    name: string,
    kind: StreamKind,
    options: { maxsize: number | undefined; visibilityTimeout: number; explicitVisibility: boolean },
    onEmpty: (q: StreamQueue) => void,
  ) {
    this.name = name;
    this.key = streamKey(name);
    this.kind = kind;
    this.maxsize = options.maxsize ?? 0;
    this.#known = options.maxsize !== undefined;
    this.visibilityTimeout = options.visibilityTimeout;
    this.#minVisibility = options.visibilityTimeout;
    this.#link = link;
    this.#consumer = consumer;
    this.#reader = reader;
    this.#onEmpty = onEmpty;
    this.#openOptions = { maxsize: options.maxsize, explicitVisibility: options.explicitVisibility };
    this.#opened = this.#tryOpen();
    this.#puts = new PutBuffer({
      key: this.key,
      metaKey: metaKey(name),
      get opened() {
        return queue.opened;
      },
      mismatch: (expect) => this.#mismatch(expect),
      get maxsize() {
        return queue.maxsize;
      },
      get known() {
        return queue.#known;
      },
      link: () => this.#linkNow!,
      hold: () => this.#hold(),
      release: () => this.#release(),
    });
    const queue = this;
  }

  /** Settles once the queue is open on the server (a queue opened while the server was away opens again). */
  get opened(): Promise<void> {
    if (this.#openFailed) {
      this.#openFailed = false;
      this.#opened = this.#tryOpen();
    }
    return this.#opened;
  }

  #tryOpen(): Promise<void> {
    const opening = this.#open(this.#openOptions.maxsize, this.#openOptions.explicitVisibility);
    // A failure is every call's to report; it is not unhandled meanwhile. One for want of the server is not for
    // good: the next call opens again (one that found another maxsize or kind is).
    opening.catch((error: unknown) => {
      if (error instanceof ConnectionError) this.#openFailed = true;
    });
    return opening;
  }

  async #open(maxsize: number | undefined, explicitVisibility: boolean): Promise<void> {
    const link = await this.#link;
    this.#linkNow = link;
    const visibility = this.kind === 'joinable' && explicitVisibility ? String(this.visibilityTimeout) : '';
    const [stored, kind, minvt] = await link.script<[string, string, string]>(
      OPEN,
      [this.key, metaKey(this.name)],
      [maxsize === undefined ? '' : String(maxsize), this.kind, visibility],
    );
    if (kind !== this.kind)
      throw new ProcessError(
        `queue "${this.name}" on ${link.shown} is a ${kind === 'joinable' ? 'JoinableQueue' : 'Queue'}; open it as one`,
        ErrorCode.QueueMismatch,
      );
    this.maxsize = Number(stored);
    this.#known = true;
    this.#answered = true;
    if (minvt !== '') this.#minVisibility = Math.min(this.#minVisibility, Number(minvt));
    // A server restarted without persistence has lost the queue: it is made again as this thread knows it.
    let regrouping: Promise<void> | undefined;
    link.onLostGroup(this.key, () => {
      regrouping ??= link
        .script(OPEN, [this.key, metaKey(this.name)], [String(this.maxsize), this.kind, visibility])
        .then(() => {})
        .finally(() => {
          regrouping = undefined;
        });
      return regrouping;
    });
  }

  /** Rejects if the queue's maxsize is not the one `maxsize` asks for (undefined: any). */
  async check(maxsize: number | undefined): Promise<void> {
    await this.opened;
    const mismatch = this.#mismatch(maxsize);
    if (mismatch !== undefined) throw mismatch;
  }

  /** The server answered this queue's open: its kind and maxsize are the server's. */
  get isOpen(): boolean {
    return this.#answered;
  }

  /** What #mismatch() says, if the server answered this queue's open; undefined otherwise. */
  mismatchKnown(maxsize: number | undefined): ProcessError | undefined {
    return this.#answered ? this.#mismatch(maxsize) : undefined;
  }

  /** Once open: why a handle that asked for `maxsize` (undefined: any) cannot use this queue, if it cannot. */
  #mismatch(maxsize: number | undefined): ProcessError | undefined {
    if (maxsize === undefined || maxsize === this.maxsize) return undefined;
    return new ProcessError(
      `queue "${this.name}" on ${this.#linkNow?.shown ?? 'the server'} has maxsize ${this.maxsize}, not ${maxsize} (maxsize belongs to the queue: its first opener set it)`,
      ErrorCode.QueueMismatch,
    );
  }

  attach(): Owner {
    const owner: Owner = { leases: [], acking: 0, closed: false };
    this.#owners.add(owner);
    return owner;
  }

  // ---- put, flush, size ----------------------------------------------------------------------------------

  /** `expect`: the maxsize the putting handle was opened with, if it said (a put of a mismatched handle is dropped). */
  put(
    owner: Owner,
    item: unknown,
    timeout: number,
    signal: AbortSignal | undefined,
    nowait: boolean,
    expect?: number,
  ): Promise<void> {
    return this.#puts.put(owner, item, timeout, signal, nowait, expect);
  }

  flush(): Promise<void> {
    return this.#puts.flush();
  }

  /**
   * Items on the server not yet gotten (this thread's buffered puts are sent first): the server counts what
   * no consumer has read, and this thread adds what it read ahead and no get took yet (read, so pending on the
   * server, but not gotten), and what it is handing back (the server counts that once the hand-back ran, and
   * the two scripts' replies come in order on the one link). Other threads' read-ahead is not seen:
   * approximate across threads.
   */
  async size(): Promise<number> {
    await this.flush();
    // A dead worker's entries being given back (reclaimFrom) count once they are: as soon as its join() resolved.
    await this.#reclaiming?.catch(() => {});
    const unread = await this.#linkNow!.script<number>(SIZE, [this.key, metaKey(this.name)], []);
    return unread + this.#ready.length + this.#handingBack;
  }

  // ---- get ----------------------------------------------------------------------------------------------

  get(owner: Owner, timeout: number, signal: AbortSignal | undefined): Promise<unknown> {
    // As a local queue's: a get that may not wait is one look, as getNowait() (the caller saw the signal unaborted).
    if (timeout === 0 && this.#waiters.length === 0) return this.getNowait(owner);
    if (this.#waiters.length === 0 && this.#ready.length > 0 && !this.#mustFetch && !this.recovering) {
      try {
        return Promise.resolve(this.#deliver(owner, this.#ready.shift()!));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    // This thread's own puts go first, so that it can get what it put.
    this.#puts.sendNow();
    return wait<unknown>(
      (waiter) => {
        const entry: GetWaiter = { waiter, owner };
        waiter.decided = (reason) => this.#deferGiveUp(entry, reason);
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
    if (this.#ready.length === 0 || this.#mustFetch || this.recovering) {
      this.#puts.sendNow();
      // A blocking read of this queue still out (a get that gave up left it) may bring entries older than this
      // fetch's: they land first (the read is ended and waited for), or a newer entry would be delivered before
      // them, against per-producer order (found by review: 1842 1843 1845 1844).
      if (this.#inRead) await (await this.#reader()).forget(this);
      await this.#fetch(1);
      if (this.#ready.length === 0 || this.#waiters.length > 0) throw new Empty();
    }
    return this.#deliver(owner, this.#ready.shift()!);
  }

  #removeWaiter(entry: GetWaiter): void {
    clearTimeout(entry.giveUpTimer);
    const i = this.#waiters.indexOf(entry);
    if (i < 0) return;
    this.#waiters.splice(i, 1);
    if (this.#waiters.length === 0) {
      this.#release();
      this.#withReader((r) => r.stopWanting(this));
    }
  }

  /**
   * A get's timeout or abort came. In a bounded queue, while a read or a fetch is out that may bring an entry
   * for it, it waits for that (true): an entry read and not delivered would count as gotten on the server,
   * and let the queue pass maxsize. The read is ended now, so that the wait costs one round trip.
   */
  #deferGiveUp(entry: GetWaiter, reason: () => unknown): boolean {
    if (entry.givingUp !== undefined) return true;
    if (!this.bounded || (!this.#inRead && this.#fetches.size === 0)) return false;
    entry.givingUp = reason;
    if (this.#inRead) this.#withReader((r) => r.end(this));
    // A server that stops answering (but keeps the connection) would hold the get for ever: it gives up anyway.
    entry.giveUpTimer = setTimeout(() => entry.waiter.reject(reason()), kGiveUpWait);
    entry.giveUpTimer.unref();
    return true;
  }

  /** Gets that gave up and are no longer waiting for a read or fetch: they settle now, with their reason. */
  #settleGivenUp(): void {
    if (this.#inRead || this.#fetches.size > 0) return;
    for (const entry of this.#waiters.filter((w) => w.givingUp !== undefined)) entry.waiter.reject(entry.givingUp!());
  }

  /** Whether the queue has a maxsize (so far as this thread knows: not yet opened counts as bounded). */
  get bounded(): boolean {
    return !this.#known || this.maxsize > 0;
  }

  /** Hands `entry` to a get of `owner`: a Queue item is taken for good, a JoinableQueue one leased. */
  #deliver(owner: Owner, entry: Entry): unknown {
    if (this.kind === 'plain') {
      // Acknowledged in batches, a few ms later: a loop of gets costs a round trip per read, not per item, and
      // a request-reply exchange does not pay for the acknowledgement on its way. (Until then the entry is
      // pending and still counted out of qsize; it is never delivered again.)
      this.#taken.push(entry.id);
      this.#takeSoon();
    } else owner.leases.push(entry);
    this.#lingerLater();
    this.#refill();
    return decodeItemBytes(entry.bytes);
  }

  #takeTimer: NodeJS.Timeout | undefined;
  #takeSoon(): void {
    this.#takeTimer ??= setTimeout(() => {
      this.#takeTimer = undefined;
      void this.#take();
    }, kTakeAfter);
  }

  #take(): Promise<unknown> {
    const link = this.#linkNow!;
    const sent: Promise<unknown>[] = [];
    // One script per 4,000 ids (Lua's unpack() takes at most about 8,000 arguments).
    while (this.#taken.length > 0) {
      const ids = this.#taken.splice(0, 4_000);
      this.#hold();
      this.#acksOut.add(ids);
      sent.push(
        link
          .script(TAKE, [this.key], ids)
          .catch((error: unknown) => {
            // Not acknowledged, perhaps not sent: left pending, the entries would be claimed as orphans and
            // delivered again. Sent again (TAKE does nothing twice); once the server is taken for lost, with the
            // next acknowledgement, if one comes (they stay known to RECOVER meanwhile, never given back).
            this.#taken.push(...ids);
            if (this.#ackAgain(error)) this.#ackLater(() => void this.#take());
          })
          .finally(() => {
            this.#acksOut.delete(ids);
            this.#release();
          }),
      );
    }
    return Promise.all(sent);
  }

  /** Whether an acknowledgement that failed with `error` is sent again: the server may only be reconnecting. */
  #ackAgain(error: unknown): boolean {
    return error instanceof ConnectionError && !this.#linkNow!.closed && this.#linkNow!.lostFor() < kLostAfter;
  }

  /** Sends failed acknowledgements again in a while, holding the link till then. */
  #ackLater(send: () => void): void {
    this.#hold();
    setTimeout(() => {
      this.#release();
      send();
    }, kAckAgainAfter);
  }

  /** Serves waiting gets from `ready`, oldest first (those that gave up last). */
  #serve(): void {
    while (this.#waiters.length > 0 && this.#ready.length > 0 && !this.#mustFetch && !this.recovering) {
      const live = this.#waiters.findIndex((w) => w.givingUp === undefined);
      const [{ waiter, owner }] = this.#waiters.splice(live === -1 ? 0 : live, 1) as [GetWaiter];
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

  /**
   * Waiting gets and nothing ready: wait on the blocking read (which returns at once what is there), or, when
   * a look for handed-back and expired entries is due, fetch first.
   */
  #fill(): void {
    if (this.#filling || this.#closed) return;
    this.#serve();
    if (this.#waiters.length === 0) return;
    // With a read of this queue out, a fetch could overtake what it brings (per-producer order): the gets wait on
    // that read, and the fetch comes once it has landed (readEnded). Unless a recovery is due, which ends it.
    if (!this.#claimDue() || (this.#inRead && !this.recovering)) {
      this.#wait();
      return;
    }
    this.#filling = true;
    this.#fetch(this.wanted).then(
      (got) => {
        this.#filling = false;
        this.#serve();
        if (this.#waiters.length === 0) return;
        if (got > 0 || this.recovering) this.#fill();
        else this.#wait();
      },
      (error) => {
        this.#filling = false;
        // The server went away: node-redis reconnects, and the gets wait on unless it stays away.
        if (!(error instanceof ConnectionError) || this.#linkNow!.lostFor() >= kLostAfter) this.#failWaiters(error);
        else setTimeout(() => this.#fill(), 100).unref();
      },
    );
  }

  #wait(): void {
    this.#withReader(
      (r) => r.want(this),
      (error) => this.#failWaiters(error),
    );
  }

  /** The thread's reader, once #reader() resolved. */
  #readerNow: BlockingReader | undefined;

  /**
   * Calls `use` with the thread's reader: at once once it is known, so that the reader hears of gets that come
   * and go in their order, and a queue that asks to be read again while the reader ends a read (readEnded) is
   * in the next read. Asked a promise step later, it found the next read already out without it and ended it,
   * whose other queue did the same in turn: two idle queues kept the reader busy, ~5,000 reads a second.
   */
  #withReader(use: (reader: BlockingReader) => void, onError: (error: unknown) => void = () => {}): void {
    if (this.#readerNow !== undefined) {
      use(this.#readerNow);
      return;
    }
    this.#reader().then((r) => {
      this.#readerNow = r;
      use(r);
    }, onError);
  }

  /** Whether the next read should be a fetch: entries were given back, or a look for orphans is due. */
  #claimDue(): boolean {
    return this.#backSeen > 0 || this.#mustFetch || this.recovering || this.#orphansDue();
  }

  /** A look for orphaned and expired entries is due. */
  #orphansDue(): boolean {
    return Date.now() - this.#lastClaim >= this.blockFor;
  }

  /** A fast consumer's read-ahead runs low: fetch the next batch while it delivers this one. */
  #refill(): void {
    if (this.#filling || this.#closed || this.#inRead || this.#readAhead < 4 || this.#ready.length >= this.#readAhead)
      return;
    this.#filling = true;
    this.#fetch(this.#readAhead).then(
      () => {
        this.#filling = false;
        this.#fill();
      },
      () => {
        this.#filling = false;
        this.#readAhead = 1;
        // A get that came meanwhile found #filling and left the filling to this fetch (a lost one must recover).
        if (this.#waiters.length > 0) this.#fill();
      },
    );
  }

  /**
   * Up to `count` entries: handed-back and (JoinableQueue) expired ones first, then new ones. A fetch that
   * got all it asked for reads further ahead next time.
   */
  #fetch(count: number): Promise<number> {
    const start = () => (this.recovering ? this.#recover().then(() => this.#fetchNow(count)) : this.#fetchNow(count));
    const fetched = this.#reclaiming === undefined ? start() : this.#reclaiming.then(start, start);
    // The first reaction to the fetch, before its caller's: what it brought was served (arrived()), so the gets
    // that gave up meanwhile and got nothing settle now.
    const done = () => {
      this.#fetches.delete(settled);
      this.#settleGivenUp();
    };
    const settled: Promise<void> = fetched.then(done, done);
    this.#fetches.add(settled);
    return fetched;
  }

  /** Fetches in flight (close waits for them: what they bring is given back). */
  readonly #fetches = new Set<Promise<void>>();

  async #fetchNow(count: number): Promise<number> {
    await this.opened;
    let claimIdle = '';
    const handBacks = this.#handBacks;
    if (this.#orphansDue()) {
      this.#lastClaim = Date.now();
      claimIdle = String(this.kind === 'plain' ? kOrphanAfter : Math.min(this.visibilityTimeout, this.#minVisibility));
    }
    let reply: [StreamEntryReply[], StreamEntryReply[], number];
    try {
      // (Awaited as it comes: a size() whose SIZE went after this fetch counts what it read once it resumes.)
      reply = await this.#linkNow!.script<[StreamEntryReply[], StreamEntryReply[], number]>(
        FETCH,
        [this.key, metaKey(this.name)],
        [this.#consumer, String(count), claimIdle, this.kind === 'plain' ? '' : '1'],
        true,
        // Given up on for want of an answer, and run after all: what it claimed goes back at once.
        (ok, reply) => {
          if (!ok) {
            this.mayHoldUnknown(); // its connection ended before the answer came
            return;
          }
          const [lateClaimed, lateFresh] = reply as [StreamEntryReply[], StreamEntryReply[]];
          this.handBack([...parseEntries(lateClaimed), ...parseEntries(lateFresh)]);
        },
      );
    } catch (error) {
      if (error instanceof ConnectionError && !willAnswerLate(error)) this.#unknownHeld = true;
      throw error;
    }
    const [claimed, fresh, back] = reply;
    const entries = [...parseEntries(claimed), ...parseEntries(fresh)];
    this.#backSeen = back;
    // The server ran this fetch after every hand-back sent before it (one connection): it claimed them first.
    if (handBacks === this.#handBacks) this.#mustFetch = false;
    this.#readAhead = entries.length === count ? Math.min(count * 2, this.#maxReadAhead()) : 1;
    this.arrived(entries);
    return entries.length;
  }

  /** Whether entries this thread never saw may sit in its pending list (a recovery is due or under way). */
  get recovering(): boolean {
    return this.#unknownHeld || this.#recovery !== undefined;
  }

  /** A read or fetch of this queue lost its answer with its connection: find what it took before going on. */
  mayHoldUnknown(): void {
    this.#unknownHeld = true;
    if (this.#waiters.length > 0) this.#fill();
  }

  /** Gives back, in place, what this consumer holds on the server and this thread does not know of. */
  #recover(): Promise<void> {
    this.#recovery ??= this.#recoverNow().finally(() => {
      this.#recovery = undefined;
    });
    return this.#recovery;
  }

  async #recoverNow(): Promise<void> {
    // Quiet first: no fetch or read of this queue is out, so every entry the server gave this thread is known.
    // (Fetches made from now on wait for this recovery.)
    const earlier = [...this.#fetches];
    await this.opened;
    await Promise.all(earlier);
    if (this.#inRead) await (await this.#reader()).forget(this);
    const known = this.#ready.map((e) => e.id);
    for (const o of this.#owners) for (const e of o.leases) known.push(e.id);
    known.push(...this.#taken, ...this.#done);
    for (const ids of this.#acksOut) known.push(...ids);
    this.#unknownHeld = false;
    let n: number;
    try {
      n = await this.#linkNow!.script<number>(RECOVER, [this.key, metaKey(this.name)], [this.#consumer, ...known]);
    } catch (error) {
      this.#unknownHeld = true;
      throw error;
    }
    if (n > 0) {
      // As after a hand-back: the next fetch claims them first, before anything in `ready` is delivered.
      this.#handBacks++;
      this.#mustFetch = true;
      this.#readAhead = 1;
    }
  }

  /** Entries this thread read and will not deliver (a read whose answer came too late): back to the server. */
  handBack(entries: Entry[]): void {
    void this.#giveBack(entries);
  }

  /** Entries read for this queue (by a fetch, or by the blocking reader: `read`). */
  arrived(entries: Entry[], read = false): void {
    if (entries.length === 0) return;
    // New entries, while entries given back wait on the server (older, so first): they are claimed first.
    if (read && this.#backSeen > 0) this.#mustFetch = true;
    const ready = this.#ready;
    const inOrder = ready.length === 0 || olderId(ready[ready.length - 1]!.id, entries[0]!.id);
    ready.push(...entries);
    // Claimed handed-back entries may be older than entries a read brought before: stream order is put order.
    if (!inOrder) ready.sort((a, b) => (olderId(a.id, b.id) ? -1 : 1));
    this.#armRenewal();
    this.#serve();
    this.#lingerLater();
  }

  /** Read-ahead left with no get to take it: handed back after kLinger ms unless a get takes it first. */
  #lingerLater(): void {
    if (this.#ready.length === 0 || this.#waiters.length > 0) {
      clearTimeout(this.#lingerTimer);
      this.#lingerTimer = undefined;
      return;
    }
    if (this.#lingerTimer !== undefined) this.#lingerTimer.refresh();
    else {
      this.#lingerTimer = setTimeout(() => {
        this.#lingerTimer = undefined;
        if (this.#waiters.length === 0) void this.#giveBack(this.#ready.splice(0));
      }, kLinger);
      this.#lingerTimer.unref();
    }
  }

  /** Gives `entries` back, in place, for any get (scripts.ts: HAND_BACK). */
  #giveBack(entries: Entry[]): Promise<void> {
    if (entries.length === 0 || this.#linkNow === undefined) return Promise.resolve();
    this.#readAhead = 1;
    this.#handBacks++;
    this.#mustFetch = true;
    this.#hold();
    this.#handingBack += entries.length;
    // Counted off in the script's own reaction, the first thing to run once its reply came: a size() whose
    // SIZE ran after it on the server (and so counts these) resumes only later.
    const handedBack = () => {
      this.#handingBack -= entries.length;
    };
    return this.#linkNow
      .script(HAND_BACK, [this.key, metaKey(this.name)], [this.#consumer, ...entries.map((e) => e.id)])
      .then(handedBack, () => {
        handedBack();
        // The server is gone: the entries stay in our pending list, claimed by another consumer later.
      })
      .finally(() => this.#release());
  }

  /** How many gets wait here. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** How many entries a read should bring: the waiting gets', or the read-ahead of a fast consumer. */
  get wanted(): number {
    return Math.max(this.#waiters.length, this.#readAhead);
  }

  /** The blocking read brought `count` entries for `asked`: read further ahead next time if it was full. */
  readSize(asked: number, count: number): void {
    this.#readAhead = count === asked ? Math.min(asked * 2, this.#maxReadAhead()) : Math.max(1, this.#readAhead >> 1);
  }

  #maxReadAhead(): number {
    return this.maxsize > 0 ? 1 : kMaxReadAhead[this.kind];
  }

  /** The blocking read includes this queue from now on. */
  readStarted(): void {
    this.#inRead = true;
  }

  /** The blocking read is over (what it brought, if anything, has arrived). */
  readStopped(): void {
    this.#inRead = false;
    this.#settleGivenUp();
  }

  /** The blocking read came back: look again (a fetch claims what was handed back or expired meanwhile). */
  readEnded(): void {
    this.readStopped();
    this.#fill();
  }

  /**
   * Longest the blocking read may wait before this queue looks again: what other consumers hand back, and
   * (JoinableQueue) leases that expire, do not wake a blocking read.
   */
  get blockFor(): number {
    return this.kind === 'joinable' ? Math.min(Math.max(this.visibilityTimeout / 4, 10), 250) : 250;
  }

  /** JoinableQueue: renews this consumer's leases (delivered or read ahead) while it lives. */
  /** A renewal is out (renewals go one at a time). */
  #renewing = false;
  /** When the last renewal was sent (Date.now()). */
  #lastRenewal = 0;

  #armRenewal(): void {
    if (this.kind !== 'joinable' || this.#renewTimer !== undefined) return;
    const renew = () => {
      const held = this.#ready.map((e) => e.id);
      for (const o of this.#owners) for (const e of o.leases) held.push(e.id);
      // Acknowledgements not sent yet (they wait for this thread's puts: #sendDone) or not answered yet: their
      // items are done, and must not expire meanwhile and be delivered again.
      held.push(...this.#done);
      for (const ids of this.#acksOut) held.push(...ids);
      if (held.length === 0 || this.#closed) {
        this.#renewTimer = undefined;
        return;
      }
      // One at a time, and only every kRenewWhileLost while the server is away: each call holds the link
      // (keeps the program alive, restarts reconnecting) for as long as it waits, and renewals every 500 ms to
      // a lost server held it for good, so a program whose work was done never exited (found by review). Tried
      // now and then, a server that comes back within visibilityTimeout still sees the lease renewed.
      const link = this.#linkNow!;
      const now = Date.now();
      if (!this.#renewing && (link.lostFor() === 0 || now - this.#lastRenewal >= kRenewWhileLost)) {
        this.#renewing = true;
        this.#lastRenewal = now;
        link.script<string>(RENEW, [this.key, metaKey(this.name)], [this.#consumer, ...held]).then(
          (minvt) => {
            this.#renewing = false;
            if (minvt !== '') this.#minVisibility = Math.min(this.#minVisibility, Number(minvt));
          },
          () => {
            this.#renewing = false;
          },
        );
      }
      this.#renewTimer = setTimeout(renew, this.#renewEvery());
      this.#renewTimer.unref();
    };
    this.#renewTimer = setTimeout(renew, this.#renewEvery());
    this.#renewTimer.unref();
  }

  /**
   * A quarter of the shortest visibilityTimeout this holder knows, and at most kRenewAtMost: a queue opened
   * later with a shorter one lowers the server's, which this holder learns only from a renewal's answer.
   */
  #renewEvery(): number {
    return Math.max(Math.min(Math.floor(this.#minVisibility / 4), kRenewAtMost), 5);
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

  // ---- JoinableQueue -----------------------------------------------------------------------------------

  /**
   * Acknowledges `owner`'s oldest lease. Resolves at once (but with the server taken for lost: it rejects, as
   * every call does then): acknowledgements go to the server once per turn of the event loop, in one script
   * (join() and close() send them first). One lost with its process is an item delivered again: at least once.
   */
  async taskDone(owner: Owner): Promise<void> {
    if (owner.leases.length - owner.acking <= 0) {
      throw new ProcessError(
        // The local queue's words (SPEC); on a server it means more than this handle got items (README).
        'taskDone() called too many times',
        ErrorCode.TaskDoneTooMany,
      );
    }
    // A server taken for lost: fail as every other call does (the acknowledgement could not land), unless it
    // answers now. The lease stays, for a taskDone() once it is back; meanwhile it is spoken for (acking), so
    // that taskDone() calls made together take one lease each, the oldest, in turn.
    if (this.#linkNow !== undefined && this.#linkNow.lostFor() >= kLostAfter) {
      owner.acking++;
      try {
        await this.#linkNow.call(['PING']);
      } finally {
        owner.acking--;
      }
    }
    const id = owner.leases.shift()!.id;
    this.#done.push(id);
    this.#doneSoon();
  }

  #done: string[] = [];
  #doneSending: Promise<void> = Promise.resolve();
  #doneScheduled = false;

  /** Sends the acknowledgements buffered once this turn of the event loop ends (holding the link till then). */
  #doneSoon(): void {
    if (this.#doneScheduled) return;
    this.#doneScheduled = true;
    this.#hold();
    setImmediate(() => {
      this.#doneScheduled = false;
      void this.#sendDone().finally(() => this.#release());
    });
  }

  /**
   * Sends the acknowledgements buffered so far, once every put this thread made before them landed (on any
   * queue: a worker's result put just before its taskDone() is there when join() sees the task done);
   * resolves once every one sent so far has landed.
   */
  #sendDone(): Promise<void> {
    if (this.#done.length === 0) return this.#doneSending;
    const landed = putsLanded();
    return landed === undefined ? this.#sendDoneNow() : landed.then(() => this.#sendDoneNow());
  }

  #sendDoneNow(): Promise<void> {
    const ids = this.#done;
    if (ids.length > 0) {
      this.#done = [];
      const previous = this.#doneSending;
      this.#acksOut.add(ids);
      this.#doneSending = this.#linkNow!.script(DONE, [this.key, metaKey(this.name)], [this.#consumer, ...ids])
        .then(
          () => {},
          (error: unknown) => {
            // Sent again (DONE does nothing twice): soon, while the server may come back; once it is taken for
            // lost, with the next taskDone() or join(), if any (meanwhile the leases, not renewed, may expire
            // and their items be done again elsewhere: at least once).
            this.#done.push(...ids);
            if (this.#ackAgain(error)) this.#ackLater(() => this.#doneSoon());
          },
        )
        .finally(() => {
          this.#acksOut.delete(ids);
        })
        .then(() => previous);
    }
    return this.#doneSending;
  }

  /** Resolves when the stream is empty (every item done) and this thread has nothing buffered. */
  async join(owner: Owner, timeout: number, signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) throw signal.reason;
    // Its steps each wait for the server in turn (acknowledgements sent again until it is taken for lost, then
    // the count): with the server gone, join() took 10.9 s to reject. It rejects once the server is lost.
    let stop = () => {};
    const lost = new Promise<never>((_, reject) => {
      const timer = setInterval(() => {
        const link = this.#linkNow;
        if (link === undefined || link.lostFor() < kLostAfter) return;
        reject(new ConnectionError(link.shown, `no answer for ${link.lostFor()} ms (the server is gone)`));
      }, 250);
      stop = () => clearInterval(timer);
    });
    try {
      return await Promise.race([this.#join(owner, timeout, signal), lost]);
    } finally {
      stop();
    }
  }

  async #join(owner: Owner, timeout: number, signal: AbortSignal | undefined): Promise<void> {
    const deadline = Date.now() + timeout;
    let poll = 1;
    this.#hold();
    try {
      await this.flush();
      await this.#sendDone();
      for (;;) {
        // Its handle closed (another handle of the queue may keep it open here): it ends as the others' calls do.
        if (this.#closed || owner.closed) throw new ClosedError('queue is closed');
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

  /** A handle closed: its waits reject, its leases go back; the last one out gives back the read-ahead. */
  async detach(owner: Owner): Promise<void> {
    const closed = new ClosedError('queue is closed');
    for (const w of this.#waiters.filter((w) => w.owner === owner)) w.waiter.reject(closed);
    this.#puts.rejectOwner(owner, closed);
    this.#owners.delete(owner);
    const leases = owner.leases.splice(0);
    if (this.#owners.size > 0) {
      await this.#giveBack(leases);
      return;
    }
    this.#onEmpty(this);
    // A blocking read of this queue in flight would bring entries after the read-ahead was given back.
    const reader = await this.#reader().catch(() => undefined);
    await reader?.forget(this);
    await Promise.all(this.#fetches);
    // What this thread put is delivered, and what it got acknowledged, as after a local close().
    await this.settle();
    this.#closed = true;
    this.#linkNow?.forgetGroup(this.key);
    this.#puts.close();
    clearTimeout(this.#lingerTimer);
    clearTimeout(this.#renewTimer);
    if (this.#linkNow === undefined) return;
    await this.#giveBack([...leases, ...this.#ready.splice(0)]);
    const keys = this.#puts.idle ? [this.key, this.#puts.producerKey] : [this.key];
    await this.#linkNow.script(RETIRE, keys, [this.#consumer]).catch(() => {});
  }

  /**
   * Gives back, in place, what the consumers `isDead` names hold in this queue (read ahead, leased): a thread
   * that is terminated or calls process.exit() cannot give it back itself, and the orphan claim would find it
   * only kOrphanAfter ms (a lease: visibilityTimeout) later, while qsize() left it out. A consumer left holding
   * nothing is removed from the group (RETIRE checks that atomically).
   */
  reclaimFrom(isDead: (consumer: string) => boolean, acks: readonly UnackedEntries[] = []): Promise<void> {
    if (this.#closed) return Promise.resolve();
    const run: Promise<void> = this.#reclaimNow(isDead, acks).finally(() => {
      if (this.#reclaiming === run) this.#reclaiming = undefined;
    });
    this.#reclaiming = run;
    return run;
  }

  async #reclaimNow(isDead: (consumer: string) => boolean, acks: readonly UnackedEntries[]): Promise<void> {
    await this.#reclaiming?.catch(() => {});
    const link = await this.#link;
    await this.opened;
    if (link.lostFor() > 0) return;
    // First what the dead thread had delivered and not yet acknowledged (noted as it exited): those went to a get
    // of it (a Queue item: exactly once) or are done (a task), and must not be given back with the rest.
    for (const { stream, consumer, ids } of acks) {
      if (stream !== this.key || ids.length === 0) continue;
      if (this.kind === 'plain') await link.script(TAKE, [this.key, metaKey(this.name)], ids);
      else await link.script(DONE, [this.key, metaKey(this.name)], [consumer, ...ids]);
    }
    // XINFO CONSUMERS: one [name, n, 'pending', n, 'idle', ms, ...] list per consumer of the group.
    const consumers = await link.call<unknown[][]>(['XINFO', 'CONSUMERS', this.key, kGroup]);
    let n = 0;
    for (const fields of consumers) {
      const name = String(fields[fields.indexOf('name') + 1]);
      if (!isDead(name)) continue;
      const pending = Number(fields[fields.indexOf('pending') + 1]);
      if (pending > 0) n += await link.script<number>(RECOVER, [this.key, metaKey(this.name)], [name]);
      else await link.script(RETIRE, [this.key], [name]);
    }
    if (n > 0) {
      // As after a hand-back: the next fetch claims them first, before anything in `ready` is delivered.
      this.#handBacks++;
      this.#mustFetch = true;
      this.#readAhead = 1;
    }
  }

  /**
   * What this thread delivered and has not had acknowledged yet (a Queue item's TAKE, a task's DONE, batched or
   * in flight): for its parent to send when it exits (context.ts), as a socket cannot be written from 'exit'.
   */
  unacknowledged(): UnackedEntries | undefined {
    const ids = this.kind === 'plain' ? [...this.#taken] : [...this.#done];
    for (const sent of this.#acksOut) ids.push(...sent);
    return ids.length === 0 ? undefined : { stream: this.key, consumer: this.#consumer, ids };
  }

  /**
   * Sends what this thread owes the server: its buffered puts, acknowledgements, and read-ahead no get
   * took (given back). For the end of a worker's task and of the program (context.ts), and close().
   */
  async settle(): Promise<void> {
    if (this.#linkNow === undefined) return;
    if (this.#puts.length > 0) await this.flush().catch(() => {});
    await Promise.all([this.#sendDone(), this.#take()]);
    if (this.#waiters.length === 0) await this.#giveBack(this.#ready.splice(0));
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
    const unlisten = signal === undefined ? undefined : onAbort(signal, abort);
    function done() {
      unlisten?.();
      resolve();
    }
    function abort() {
      clearTimeout(timer);
      reject(signal!.reason);
    }
  });
}

/** Whether stream entry id `a` comes before `b` ("ms-seq"). */
function olderId(a: string, b: string): boolean {
  const da = a.indexOf('-');
  const db = b.indexOf('-');
  const ma = Number(a.slice(0, da));
  const mb = Number(b.slice(0, db));
  return ma !== mb ? ma < mb : Number(a.slice(da + 1)) < Number(b.slice(db + 1));
}

type StreamEntryReply = [Buffer, Buffer[] | null];
export type StreamReply = [Buffer, StreamEntryReply[]][];

/** The entries of one stream of a reply (an entry deleted meanwhile has no fields: skipped). */
export function parseEntries(list: StreamEntryReply[]): Entry[] {
  const out: Entry[] = [];
  for (const [id, fields] of list) {
    if (fields === null || fields.length < 2) continue;
    out.push({ id: id.toString('latin1'), bytes: fields[1]! });
  }
  return out;
}
