// The one blocking read of a thread: a single XREADGROUP … BLOCK over every stream that has gets waiting in
// this thread, on the link's second connection. So a thousand waiting gets, on one queue or many, use two
// connections, not a thousand.
//
// Invariants:
//   At most one read is in flight. A queue that starts waiting while a read is in flight and is not part of
//   it ends that read (CLIENT UNBLOCK), so that the next read includes it.
//   A read asks each stream for at most as many entries as gets wait on it (one COUNT for all: the fewest a
//   bounded queue in the read wants, else the most any queue wants); what arrives for an unbounded queue whose
//   gets gave up meanwhile waits in that queue's read-ahead for the next get (or goes back at close); a
//   bounded queue's gets that give up wait for the read (stream-queue.ts).
//   A read never blocks longer than the shortest `blockFor` of its queues, so JoinableQueue sweeps run on time
//   and a lost server is noticed.
//   A read whose answer was lost with its connection may have taken entries: its queues are not read again
//   until each has found them in this consumer's pending list (stream-queue.ts: recovery).
import { ConnectionError } from '../errors.ts';
import { isNoGroup, kLostAfter, type Link, willAnswerLate } from './link.ts';
import { kGroup } from './scripts.ts';
import { parseEntries, type StreamQueue, type StreamReply } from './stream-queue.ts';

/** Most entries one read asks of a stream. */
const kMaxCount = 256;

export class BlockingReader {
  readonly #link: Link;
  readonly #consumer: string;
  readonly #wanting = new Set<StreamQueue>();
  #reading: Set<StreamQueue> | null = null;
  /** The read in flight, settled once its entries were handed to their queues. */
  #inFlight: Promise<void> | undefined;
  #running = false;
  #stopped = false;

  constructor(link: Link, consumer: string) {
    this.#link = link;
    this.#consumer = consumer;
  }

  /** `q` has gets waiting and nothing to give them: read it until it has none. */
  want(q: StreamQueue): void {
    if (this.#stopped) return;
    this.#wanting.add(q);
    if (this.#reading !== null && !this.#reading.has(q)) this.#link.unblock();
    if (!this.#running) void this.#run();
  }

  /** `q` has no gets waiting any more (asked a step late, perhaps: a get made since keeps it wanted). */
  stopWanting(q: StreamQueue): void {
    if (q.waiting === 0) this.#wanting.delete(q);
  }

  /** Ends the read in flight if it includes `q` (a bounded queue's get gave up and waits for what it brings). */
  end(q: StreamQueue): void {
    if (this.#reading?.has(q)) this.#link.unblock();
  }

  /**
   * `q` is closing: no more reads of it, and one in flight that includes it is ended now and waited for, so
   * that what it brings lands in `q`'s read-ahead before `q` gives that back.
   */
  async forget(q: StreamQueue): Promise<void> {
    this.#wanting.delete(q);
    if (this.#reading?.has(q) && this.#inFlight !== undefined) {
      this.#link.unblock();
      await this.#inFlight.catch(() => {});
    }
  }

  stop(): void {
    this.#stopped = true;
    this.#wanting.clear();
  }

  async #run(): Promise<void> {
    this.#running = true;
    try {
      while (!this.#stopped) {
        for (const q of this.#wanting) if (q.waiting === 0 || q.recovering) this.#wanting.delete(q);
        if (this.#wanting.size === 0) return;
        const queues = [...this.#wanting];
        // One COUNT for every stream: a bounded queue must not get more than its gets take (a read-ahead entry
        // counts as gotten on the server), so with one in the read, the fewest a bounded queue wants.
        const bounded = queues.filter((q) => q.bounded);
        const count = Math.min(
          bounded.length > 0 ? Math.min(...bounded.map((q) => q.wanted)) : Math.max(...queues.map((q) => q.wanted)),
          kMaxCount,
        );
        const block = Math.min(...queues.map((q) => q.blockFor));
        this.#reading = new Set(queues);
        for (const q of queues) q.readStarted();
        let reply: StreamReply | null;
        let landed!: () => void;
        this.#inFlight = new Promise<void>((resolve) => {
          landed = resolve;
        });
        try {
          reply = await this.#link.blocking<StreamReply | null>(
            [
              'XREADGROUP',
              'GROUP',
              kGroup,
              this.#consumer,
              'COUNT',
              String(count),
              'BLOCK',
              String(block),
              'STREAMS',
              ...queues.map((q) => q.key),
              ...queues.map(() => '>'),
            ],
            block,
            // Given up on for want of an answer, and run after all: what it read goes back at once.
            (ok, late) => {
              // Its connection ended before the answer came: what it read sits in this consumer's pending list.
              if (!ok) for (const q of queues) q.mayHoldUnknown();
              if (!ok || late === null) return;
              const byKey = new Map(queues.map((q) => [q.key, q]));
              for (const [key, entries] of late as StreamReply)
                byKey.get(key.toString('latin1'))?.handBack(parseEntries(entries));
            },
          );
        } catch (error) {
          this.#reading = null;
          for (const q of queues) q.readStopped();
          landed();
          if (this.#stopped) return;
          // The server restarted without persistence: the groups are made again, and the gets wait on.
          if (isNoGroup(error) && (await this.#link.regroup(queues.map((q) => q.key)).catch(() => false))) continue;
          // The server went away: node-redis reconnects; the gets fail only if it stays away.
          if (this.#link.lostFor() >= kLostAfter || !(error instanceof ConnectionError)) {
            const lost =
              error instanceof ConnectionError ? error : new ConnectionError(this.#link.shown, String(error));
            // Every queue waiting on this read, and those that began to want one while it was stuck (they
            // asked it to end, and it could not): their gets would otherwise wait for a read nobody makes.
            const waiting = new Set([...queues, ...this.#wanting]);
            this.#wanting.clear();
            for (const q of waiting) q.lost(lost);
            return;
          }
          // The read may have run, and its answer gone with the connection: each queue finds what it took in
          // this consumer's pending list (and gives it back, in place) before it is read again.
          if (!willAnswerLate(error))
            for (const q of queues) {
              this.#wanting.delete(q);
              q.mayHoldUnknown();
            }
          await new Promise((resolve) => setTimeout(resolve, 100));
          continue;
        }
        this.#reading = null;
        if (reply !== null) {
          const byKey = new Map(queues.map((q) => [q.key, q]));
          for (const [key, entries] of reply) {
            const q = byKey.get(key.toString('latin1'));
            if (q === undefined) continue;
            q.readSize(count, entries.length);
            q.arrived(parseEntries(entries), true);
          }
        }
        landed();
        // Each queue looks again itself (a read of what is there, a sweep if due) and asks again if need be.
        for (const q of queues) {
          this.#wanting.delete(q);
          q.readEnded();
        }
      }
    } finally {
      this.#running = false;
      this.#reading = null;
    }
  }
}
