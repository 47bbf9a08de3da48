// An end of a pipe in a Pool's initargs, shared by the pool's workers as Python's workers share a connection
// they inherit. A MessagePort belongs to one thread, so the end stays in the thread that made the pool, and
// each worker (each replacement too) gets an end of its own, linked to this relay: what a worker sends goes on
// through the shared end, and what comes in through it goes to the workers that wait for a message, the
// longest waiting first (a worker's end asks for messages only while a receive waits there; connection.ts).
//
// Invariants:
//   `#links` holds every worker's link not yet drained: a worker's messages were all sent on before its link
//     leaves the set (a port's 'close' comes once every message before it was dispatched).
//   `#asks` lists links in the order they asked for messages, an entry per message asked for; an entry whose
//     request was taken back is skipped (link.take() says false). A message taken off the shared end goes to
//     the first request still there, or waits in `#held` (oldest first) until one comes.
//   The shared end is read only while some link asks (`#pumping`; a read under way is aborted once none does, so
//     that it keeps nothing alive), and what nobody asked for stays in it.
//   A link of a worker the pool stops, or that exited, is retired first (its requests can no longer be taken):
//     a message taken for a thread being terminated would be lost with it.
//   The shared end closes (the other end sees EOF) once the pool has ended and every link is drained, so a
//     receiver reading to EOF gets everything every worker sent. At EOF on the shared end, every link closes:
//     its worker sees EOF once it received what was delivered to it.
//   Links are unref'd: a pool that is never closed does not keep the program alive through them.
//   Only a pool worker's start gets a link (`#starting`): anywhere else the end was sent away, as after a send
//     to a Process, so a message sent through it never goes nowhere and the pool's end brings EOF in time.
//   Messages are posted on as they came, both ways, never rebuilt here: their handles and registered classes
//     are for their receiver to know, not this thread. The pipe's other end sends to the shared end in FORWARD
//     form (with the list of what each message moves) for as long as it is shared (connection.ts, kShare).
import {
  type Connection,
  demandOf,
  forwardOf,
  kForward,
  kShare,
  kUnshare,
  type RelayLink,
  relayedEnd,
} from '../connection.ts';
import { ClosedError, EOFError } from '../errors.ts';

export class SharedEnd {
  readonly #end: Connection;
  readonly #links = new Set<RelayLink>();
  #asks: RelayLink[] = [];
  readonly #held: unknown[] = [];
  #pumping = false;
  /** The read of the shared end under way, aborted once nobody asks. */
  #reading: AbortController | undefined;
  #eof = false;
  #poolEnded = false;
  /** The links made by the worker start under way (starting()), or undefined outside one. */
  #starting: RelayLink[] | undefined;
  /** How many links were ever made (the pool's end can go back to its caller only while none was). */
  #made = 0;
  readonly #destination: string;
  readonly #original: Connection;

  /** Takes `end` (open) over: it is unusable in this thread from now on, as one sent to a worker is. */
  constructor(end: Connection, poolName: string) {
    this.#destination = `the workers of pool ${poolName}`;
    this.#original = end;
    this.#end = end[kShare](this.#destination, (channel) => this.#newLink(channel));
  }

  /**
   * Runs a pool worker's start: the initargs it sends get a link each. Returns what to call when the pool stops
   * that worker or sees it exit (see the invariants).
   */
  starting(start: () => void): () => void {
    const mine: RelayLink[] = [];
    this.#starting = mine;
    try {
      start();
    } finally {
      this.#starting = undefined;
    }
    return () => {
      for (const link of mine) this.#retire(link);
    };
  }

  #retire(link: RelayLink): void {
    link.retire();
    this.#asks = this.#asks.filter((l) => l !== link);
    this.#stopReadingIfUnasked();
  }

  /** Nobody asks any more: the read of the shared end stops (a read waiting keeps the program alive). */
  #stopReadingIfUnasked(): void {
    if (this.#reading !== undefined && !this.#asks.some((link) => link.asking())) this.#reading.abort();
  }

  /**
   * The pool could not start (a `new Pool` that throws): the end goes back to its caller, usable as before, if
   * no worker got an end of it; otherwise it ends as after the pool's end.
   */
  cancel(): void {
    if (this.#made === 0) this.#original[kUnshare](this.#end);
    else this.poolEnded();
  }

  /** The pool's workers have all exited for good: once what they sent is sent on, the shared end closes. */
  poolEnded(): void {
    this.#poolEnded = true;
    this.#closeIfDone();
  }

  #newLink(channel: string | undefined): Connection {
    if (this.#starting === undefined || this.#poolEnded)
      throw new ClosedError(`connection was sent to ${this.#destination} and cannot be used here`);
    const link = relayedEnd(this.#end.readable, this.#end.writable, channel);
    this.#made++;
    const { port } = link;
    this.#links.add(link);
    this.#starting.push(link);
    port.on('message', (data: unknown) => this.#fromWorker(link, data));
    // A message this thread cannot rebuild has no caller left to tell (the worker's send() returned).
    port.on('messageerror', () => {});
    port.on('close', () => {
      this.#links.delete(link);
      this.#asks = this.#asks.filter((l) => l !== link);
      this.#stopReadingIfUnasked();
      link.close();
      this.#closeIfDone();
    });
    port.unref();
    if (this.#eof) link.close();
    return link.end;
  }

  // Nothing thrown here may escape (it would crash this thread): a message that cannot be rebuilt or sent on
  // is dropped, as a message sent to a pipe whose reader is gone is.
  #fromWorker(link: RelayLink, data: unknown): void {
    const asked = demandOf(data);
    if (asked === undefined) {
      const { data: message, transfer } = forwardOf(data);
      try {
        this.#end[kForward](message, transfer);
      } catch {}
      return;
    }
    if (asked < 0) {
      // Requests the worker took back (its receive gave up): forget as many of its entries, newest first.
      for (let n = -asked, i = this.#asks.length - 1; n > 0 && i >= 0; i--)
        if (this.#asks[i] === link) {
          this.#asks.splice(i, 1);
          n--;
        }
      this.#stopReadingIfUnasked();
      return;
    }
    for (let i = 0; i < asked; i++) this.#asks.push(link);
    while (this.#held.length > 0 && this.#deliver(this.#held[0])) this.#held.shift();
    void this.#pump();
  }

  /** Reads the shared end while some link asks for a message. */
  async #pump(): Promise<void> {
    if (this.#pumping || this.#eof) return;
    this.#pumping = true;
    try {
      while (this.#asks.some((link) => link.asking())) {
        let message: unknown;
        const reading = (this.#reading = new AbortController());
        try {
          message = await this.#end.recv({ signal: reading.signal });
        } catch (error) {
          if (error instanceof EOFError) {
            this.#eof = true;
            for (const link of this.#links) link.close();
            return;
          }
          if (this.#end.closed || reading.signal.aborted) return; // nobody asks: the message stays in the pipe
          continue; // a message this thread could not rebuild: dropped (see #fromWorker)
        } finally {
          this.#reading = undefined;
        }
        if (!this.#deliver(message)) this.#held.push(message);
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** Gives `message` to the oldest request still there: false if there is none. */
  #deliver(message: unknown): boolean {
    while (this.#asks.length > 0) {
      const link = this.#asks.shift()!;
      if (!link.take()) continue;
      link.deliver(message);
      return true;
    }
    return false;
  }

  #closeIfDone(): void {
    if (this.#poolEnded && this.#links.size === 0) this.#end.close();
  }
}
