// The control protocol between the bench's main thread and its workers (raw JavaScript workers and
// mpthreads Processes alike), and a small mailbox that turns a MessagePort's 'message' events into awaitable
// reads. Control messages are few per repetition and never on a timed path except 'go' and 'done'.
//
//   main -> worker                         worker -> main
//   { op: 'setup', role }                  { op: 'ready' }                 role installed (channels inside)
//   { op: 'run', n, start }                { op: 'ready' }                 then waits for 'go' (producers,
//   { op: 'go' }                                                            pingers) or starts consuming
//                                          { op: 'done', count, checksum, stats? }   the repetition is over
//   { op: 'teardown' }                     { op: 'ready' }                 role's channels closed
//   { op: 'exit' }                         (the worker returns)
//                                          { op: 'error', message, stack } anything that went wrong

/**
 * @typedef {{ op: 'setup', role: Record<string, any> }
 *   | { op: 'run', n: number, start: number }
 *   | { op: 'go' }
 *   | { op: 'teardown' }
 *   | { op: 'exit' }} Command
 * @typedef {{ elapsedMs: number, p50us: number, p99us: number }} RoundTripStats
 * @typedef {{ op: 'ready' }
 *   | { op: 'done', count: number, checksum: number, stats?: RoundTripStats }
 *   | { op: 'error', message: string, stack?: string }} Reply
 */

/** A value that cannot be an item: the end-of-stream marker of raw streams and the stop marker of pingers. */
export const STOP = -1;

/**
 * Awaitable reads from a MessagePort (or anything with on/off('message')). Messages that arrive while
 * nobody reads are kept, in order. The port is unref'd while nobody reads, so an idle mailbox keeps
 * nothing alive.
 */
export class Mailbox {
  /** @type {unknown[]} */
  #inbox = [];
  /** @type {((value: unknown) => void)[]} */
  #readers = [];
  /** @type {import('node:worker_threads').MessagePort} */
  #port;

  /** @param {import('node:worker_threads').MessagePort} port */
  constructor(port) {
    this.#port = port;
    port.on('message', (message) => {
      const reader = this.#readers.shift();
      if (reader !== undefined) reader(message);
      else this.#inbox.push(message);
      if (this.#readers.length === 0) port.unref();
    });
    port.unref();
  }

  /** @returns {Promise<any>} */
  next() {
    if (this.#inbox.length > 0) return Promise.resolve(this.#inbox.shift());
    this.#port.ref();
    return new Promise((resolve) => this.#readers.push(resolve));
  }

  /**
   * @param {unknown} message
   * @param {readonly any[]} [transfer]
   */
  post(message, transfer) {
    this.#port.postMessage(message, transfer);
  }

  close() {
    this.#port.close();
  }
}

/**
 * An error as a control reply.
 * @param {unknown} error
 * @returns {Reply}
 */
export function errorReply(error) {
  const e = /** @type {Error} */ (error);
  return { op: 'error', message: e?.message ?? String(error), stack: e?.stack };
}
