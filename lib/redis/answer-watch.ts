// Which commands a link sent and has no answer to yet, and when to give up on one. A server that stops (SIGSTOP,
// a long DEBUG SLEEP) or a connection cut off silently (a NAT or firewall dropping the flow) keeps the socket
// open, and node-redis bounds only the wait before a command is written: without this, a call would wait for
// good.
//
// Invariants:
//   A command past its deadline is looked at after the turn's poll phase (answers read there settle first),
//   and time the thread spent in synchronous code does not count (answers may sit unread).
//   The server is then asked for a PING on a connection of its own. No answer: the server is not answering,
//   and the overdue commands are given up on (their callers get a ConnectionError), while they may still run;
//   until every command given up on has its answer (or its connection's end), the link is `stuck` and calls
//   reject at once rather than pile up behind them. An answer: the server is alive, and an overdue command gets
//   more time, as long as its connection could still be moving its bytes at kMinBytesPerMs (a command whose
//   answer carries items: kSlowAnswerMs at least, since the answer's size is not known); past that, its
//   connection is dead (the server lives): it is reset, which fails what it carried, as a dropped one does.
//   Commands given up on stay watched: once the server answers again, one whose connection stays silent past
//   its cap has that connection reset too, so that the link is not stuck for good.
//   A caller that must know whether a command it was told failed ran after all (a batch of puts, a read)
//   passes `late`; late answers are told once nothing is stuck any more, so that what they do can be sent.
import { ConnectionError } from '../errors.ts';

/** Told how a command that its caller was told failed (no answer in time) really ended, once it did. */
export type Late = (ok: boolean, value: unknown) => void;

/** How often the commands sent are checked for an answer overdue. */
const kPeriodMs = 250;
/** How long the server has to answer a PING (on a connection of its own) before overdue commands are given up. */
export const kProbeMs = 1_000;
/** The slowest a live connection is taken to move bytes (64 KiB/s): a command past that has a dead connection. */
const kMinBytesPerMs = 64;
/** The least time a live connection is given for an answer that carries items (its size is not known). */
const kSlowAnswerMs = 60_000;

/** Errors of commands given up on for want of an answer, whose caller passed `late`: they may still run. */
const lateErrors = new WeakSet<object>();

/** Whether `error` is a command given up on whose `late` will be told how it ended. */
export function willAnswerLate(error: unknown): boolean {
  return typeof error === 'object' && error !== null && lateErrors.has(error);
}

/** What a watch needs of its link. */
export interface WatchHooks {
  /** The server's URL as messages show it. */
  readonly shown: string;
  /** Whether the server answers a PING within kProbeMs, on a connection of its own. */
  probe(): Promise<boolean>;
  /** `connection` is dead (the server answers elsewhere): close and reopen it, failing what it carries. */
  reset(connection: object): void;
  /**
   * Whether `connection` is connected: a command on one that is reconnecting waits in the client, unwritten,
   * and the client's own timeout ends it; it cannot run later, so it is not given up on (nor made stuck).
   */
  connected(connection: object): boolean;
  /** A command sent at `sentAt` was given up on: the server counts as lost since then. */
  lost(sentAt: number): void;
  /** A command given up on was answered after all: the server is back. */
  back(): void;
}

interface Watched {
  sentAt: number;
  /** When to look at it (moved by time the thread was blocked, and by a live server). */
  deadline: number;
  /** The latest a live connection could take to answer it. */
  cap: number;
  connection: object;
  /** Its caller was told it failed; its answer, or its connection's end, is still to come. */
  givenUp: boolean;
  giveUp(): void;
}

export class AnswerWatch {
  readonly #hooks: WatchHooks;
  readonly #watched = new Set<Watched>();
  #timer: NodeJS.Timeout | undefined;
  /** When the timer last ran: a longer gap is time this thread could not read answers. */
  #lastTick = 0;
  #probing = false;
  /** Commands given up on whose answer (or connection's end) has not come. */
  #stuck = 0;
  /** What late answers do, held until nothing is stuck. */
  readonly #lateCalls: (() => void)[] = [];
  /** Bytes of the commands sent and not answered: a command waits behind them on the wire. */
  #bytesOut = 0;

  constructor(hooks: WatchHooks) {
    this.#hooks = hooks;
  }

  /** Commands given up on still have no answer: the server is not answering. */
  get stuck(): boolean {
    return this.#stuck > 0;
  }

  /**
   * The answer of `sent` (written to `connection`), or a ConnectionError once `ms` pass without one and the
   * server does not answer a PING either; `late` hears then how the command ended.
   */
  track<T>(
    sent: Promise<unknown>,
    connection: object,
    ms: number,
    bytes: number,
    itemsBack: boolean,
    late?: Late,
  ): Promise<T> {
    const sentAt = Date.now();
    this.#bytesOut += bytes;
    const cap = sentAt + ms + this.#bytesOut / kMinBytesPerMs;
    return new Promise<T>((resolve, reject) => {
      const entry: Watched = {
        sentAt,
        // Early enough that the PING and the period still fit in `ms`.
        deadline: sentAt + Math.max(ms - kProbeMs - kPeriodMs, kPeriodMs),
        cap: itemsBack ? Math.max(cap, sentAt + kSlowAnswerMs) : cap,
        connection,
        givenUp: false,
        giveUp: () => {
          entry.givenUp = true;
          entry.deadline = Date.now() + 4 * kProbeMs; // looked at again then, while the server may be back
          this.#stuck++;
          this.#hooks.lost(sentAt);
          const error = new ConnectionError(
            this.#hooks.shown,
            `no answer within ${Date.now() - sentAt} ms (the server is stopped, or cut off)`,
          );
          if (late !== undefined) lateErrors.add(error);
          reject(error);
        },
      };
      this.#watched.add(entry);
      if (this.#timer === undefined) {
        this.#lastTick = Date.now();
        this.#timer = setInterval(() => this.#check(), kPeriodMs).unref();
      }
      const settle = (ok: boolean, value: unknown) => {
        this.#bytesOut -= bytes;
        this.#watched.delete(entry);
        if (!entry.givenUp) {
          if (ok) resolve(value as T);
          else reject(value);
          return;
        }
        // A late answer, or the connection's end.
        const last = --this.#stuck === 0;
        if (ok && last) this.#hooks.back();
        if (late !== undefined) this.#lateCalls.push(() => late(ok, value));
        if (last) for (const call of this.#lateCalls.splice(0)) call();
      };
      sent.then(
        (value) => settle(true, value),
        (error) => settle(false, error),
      );
    });
  }

  /** For good (the link closed). */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Time this thread spent blocked since the last look is given back to every command. */
  #accountGap(): void {
    const now = Date.now();
    const gap = now - this.#lastTick - kPeriodMs;
    this.#lastTick = now;
    if (gap > kPeriodMs)
      for (const entry of this.#watched) {
        entry.deadline += gap;
        entry.cap += gap;
      }
  }

  #check(): void {
    this.#accountGap();
    if (this.#watched.size === 0) {
      this.stop();
      return;
    }
    const now = Date.now();
    if (this.#probing || ![...this.#watched].some((entry) => now >= entry.deadline)) return;
    this.#probing = true;
    // After this turn's poll phase: answers read there settle their commands first.
    setImmediate(() => {
      void this.#hooks.probe().then((alive) => {
        this.#probing = false;
        this.#accountGap();
        const then = Date.now();
        const dead = new Set<object>();
        for (const entry of this.#watched) {
          if (then < entry.deadline) continue;
          if (alive && then >= entry.cap) dead.add(entry.connection);
          else if (alive) entry.deadline = Math.min(then + 4 * kProbeMs, entry.cap);
          else if (entry.givenUp || !this.#hooks.connected(entry.connection)) entry.deadline = then + 4 * kProbeMs;
          else entry.giveUp();
        }
        for (const connection of dead) this.#hooks.reset(connection);
      });
    });
  }
}
