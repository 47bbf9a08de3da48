// An end of a pipe in a Pool's initargs, shared by the pool's workers as Python's workers share a connection
// they inherit. A MessagePort belongs to one thread, so the end stays in the thread that made the pool, and
// each worker (each replacement too) gets an end of its own whose messages this relay sends on through it:
// the workers send, and the other end of the pipe receives from all of them, each worker's messages in order.
// The workers' ends are write-only: which worker a message sent the other way should go to is a race Python
// leaves to the OS, and a relay cannot know which worker will read next.
//
// Invariants:
//   `#links` holds the relay side of every worker's end not yet drained: a worker's messages were all sent on
//     before its link leaves the set (a port's 'close' comes once every message before it was dispatched).
//   The shared end closes (the other end sees EOF) once the pool has ended and every link is drained, so a
//     receiver reading to EOF gets everything every worker sent.
//   Links are unref'd: a pool that is never closed does not keep the program alive through them.
import type { MessagePort } from 'node:worker_threads';
import { type Connection, kShare, unwrapMessage, writeOnlyEnd } from '../connection.ts';

export class SharedEnd {
  readonly #end: Connection;
  readonly #links = new Set<MessagePort>();
  #poolEnded = false;

  /** Takes `end` (open, writable) over: it is unusable in this thread from now on, as one sent to a worker is. */
  constructor(end: Connection, poolName: string) {
    this.#end = end[kShare](`the workers of pool ${poolName}`, () => this.#newLink());
  }

  /** The pool's workers have all exited for good: once what they sent is sent on, the shared end closes. */
  poolEnded(): void {
    this.#poolEnded = true;
    this.#closeIfDone();
  }

  #newLink(): Connection {
    const { end, port, close } = writeOnlyEnd();
    this.#links.add(port);
    port.on('message', (data: unknown) => this.#forward(data));
    // A message the relay's thread cannot rebuild has no caller left to tell (the worker's send() returned).
    port.on('messageerror', () => {});
    port.on('close', () => {
      this.#links.delete(port);
      close();
      this.#closeIfDone();
    });
    port.unref();
    return end;
  }

  #forward(data: unknown): void {
    // Nothing thrown here may escape (it would crash this thread): a message that cannot be rebuilt or sent on
    // is dropped, as a message sent to a pipe whose reader is gone is.
    try {
      this.#end.send(unwrapMessage(data));
    } catch {}
  }

  #closeIfDone(): void {
    if (this.#poolEnded && this.#links.size === 0) this.#end.close();
  }
}
