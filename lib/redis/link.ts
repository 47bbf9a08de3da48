// One process's (thread's) link to a Redis server, as the queues use it: a connection for commands (node-redis
// pipelines the commands of one tick), and a second, made on first need, for the one blocking read that
// serves every get waiting in this thread (reader.ts).
//
// Invariants:
//   Every call settles: with the reply, or with a ConnectionError naming the URL within kLostAfter ms of the
//   server going away (node-redis queues commands while it reconnects, and times them out), or of a command
//   sent and not answered (answer-watch.ts: a server stopped, or a connection cut off, keeps the socket open).
//   While commands given up on have not been answered, the link is stuck: calls reject at once.
//   The sockets keep the process alive only while a call is outstanding or something waits (hold/release): a
//   program that never calls close() still exits when it has nothing left to do, as with local queues.
//   The client package (node-redis) is imported on first connect, never by `import 'mpthreads'`.
import { createHash } from 'node:crypto';
import { ConnectionError, describe, ErrorCode, ProcessError } from '../errors.ts';
import { AnswerWatch, kProbeMs, type Late, willAnswerLate } from './answer-watch.ts';

export { type Late, willAnswerLate } from './answer-watch.ts';

/** The probe's clock ticks this often (ms). */
const kProbeTickMs = 50;
/** How long a lost server may take to come back before calls fail (SPEC: within 10 s). */
export const kLostAfter = 8_000;
/** The least a call waits for a lost server to come back. */
const kLastChance = 1_500;
/** How often a command the server refused while loading its data (LOADING) is sent again. */
const kLoadingRetryMs = 100;
/** How long connect() tries a server that refuses or does not answer. */
export const kConnectDeadline = 3_000;

type NodeRedis = typeof import('redis');

// node-redis's client type is generic over modules, functions and scripts we do not use.
type Client = any;

let loading: Promise<NodeRedis> | undefined;
function nodeRedis(): Promise<NodeRedis> {
  loading ??= import('redis').catch((error: unknown) => {
    loading = undefined;
    throw new ProcessError(
      'mpthreads/redis needs the Redis client package: npm install redis (node-redis 5 or later)',
      ErrorCode.ModuleLoad,
      { cause: error },
    );
  });
  return loading;
}

/** The bytes a command's arguments take on the wire (about). */
function byteLength(args: readonly (string | Buffer)[]): number {
  let n = 0;
  for (const arg of args) n += arg.length;
  return n;
}

/** The server has the stream but not its consumer group, or neither: it lost them (restarted empty). */
export function isNoGroup(error: unknown): boolean {
  return error instanceof ProcessError && /NOGROUP/.test(error.message);
}

/** What went wrong, for a message: some of the client's errors have none (a timeout, a refused connection). */
function failureReason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // node-redis's, when the link reset a connection (answer-watch.ts); close() words its own.
  if (error.constructor?.name === 'DisconnectsClientError')
    return 'the connection stopped answering, though the server answers on another: it was opened again';
  if (error.message !== '') return error.message;
  if (error instanceof AggregateError && error.errors.length > 0) return error.errors.map(failureReason).join('; ');
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') return code;
  const kind = error.constructor?.name ?? error.name;
  if (kind === 'TimeoutError') return 'no answer in time (the server is down, or not responding)';

  return kind;
}

/** A server's refusal of the credentials. */
function refusedCredentials(error: unknown): boolean {
  return /^(WRONGPASS|NOAUTH)\b/.test(error instanceof Error ? error.message : String(error));
}

/** A server's refusal that trying again will not change: wrong credentials, or no such database. */
function refusedForGood(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return (
    refusedCredentials(error) || /^ERR (AUTH|invalid password|DB index is out of range|invalid DB index)/i.test(message)
  );
}

/** How long connect() waits for the answer to its PING (which only looks for a refused password). */
const kPingMs = 1_000;

/** The URL as messages show it: without its password. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.href.replace(/\/$/, '');
  } catch {
    return url;
  }
}

export class Link {
  readonly url: string;
  readonly shown: string;
  readonly #redis: NodeRedis;
  readonly #client: Client;
  #blocker: Client | undefined;
  #blockerId: number | undefined;
  #holds = 0;
  #closed = false;
  #lostAt: number | undefined;
  /** Digests of the scripts this link has run (its first EVAL of each cached it on the server). */
  readonly #scripts = new Map<string, string>();
  /** How each open queue (by stream key) makes its consumer group again. */
  readonly #regroupers = new Map<string, () => Promise<void>>();
  /** The commands sent and not answered yet. */
  readonly #answers: AnswerWatch;
  /** The connection for the watch's PINGs (made on first need). */
  #prober: Client | undefined;

  private constructor(url: string, redis: NodeRedis, client: Client) {
    this.url = url;
    this.shown = displayUrl(url);
    this.#redis = redis;
    this.#client = client;
    this.#answers = new AnswerWatch({
      shown: this.shown,
      probe: () => this.#probe(),
      reset: (connection) => this.#reset(connection as Client),
      connected: (connection) => (connection as Client).isReady === true,
      lost: (sentAt) => {
        this.#lostAt = Math.min(this.#lostAt ?? sentAt, sentAt);
      },
      back: () => {
        this.#lostAt = undefined;
      },
    });
  }

  /** Connects, or rejects with ConnectionError (naming the URL) within kConnectDeadline ms. */
  static async open(url: string): Promise<Link> {
    if (typeof url !== 'string') throw new TypeError(`connect(url): url must be a string, got ${describe(url)}`);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new TypeError(`connect(url): not a URL: ${JSON.stringify(url)}`);
    }
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')
      throw new TypeError(`connect(url): the URL must start with redis:// or rediss://, got ${displayUrl(url)}`);
    const redis = await nodeRedis();
    let made: Link | undefined;
    const link: Link = new Link(
      url,
      redis,
      Link.#newClient(redis, url, () => made!.#stopReconnecting()),
    );
    made = link;
    link.#watch(link.#client);
    await link.#connect(link.#client);
    // A server that wants a password lets a client without one connect, and refuses its first command: ask one
    // now, so that connect() says so rather than every later call. Only a refusal of the credentials counts:
    // any other answer (LOADING, BUSY, NOPERM for an ACL user without PING), or none within kPingMs (a CLIENT
    // PAUSE), means connected, and the calls say the rest.
    link.hold(); // the client is ref'd only while something waits on it
    let timer: NodeJS.Timeout | undefined;
    try {
      const answered = link.#client.ping().then(
        () => undefined,
        (error: unknown) => error,
      );
      const late = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), kPingMs);
      });
      const error = await Promise.race([answered, late]);
      if (error !== undefined && refusedCredentials(error)) {
        link.#client.destroy?.();
        throw new ConnectionError(link.shown, failureReason(error), { cause: error });
      }
    } finally {
      clearTimeout(timer);
      link.release();
    }
    link.#client.unref();
    return link;
  }

  /**
   * `stop`: whether a lost connection is not to be made again now: the link closed, or nothing waits on it
   * (node-redis waits between tries on a timer that keeps the process alive: a program that forgot close()
   * would never exit while the server is away; hold() makes it again).
   */
  static #newClient(redis: NodeRedis, url: string, stop: () => boolean): Client {
    const client = redis.createClient({
      url,
      // Replies as arrays (RESP2), whatever the client's default protocol: the queues parse them by position.
      RESP: 2,
      socket: {
        connectTimeout: kConnectDeadline,
        // Reconnect quickly and for good: a restarted server is found again within half a second.
        reconnectStrategy: (retries: number) => (stop() ? false : Math.min(25 * 2 ** retries, 500)),
      },
    });
    // node-redis reports every failed reconnection as an 'error' event; the calls say what matters.
    client.on('error', () => {});
    return client;
  }

  /**
   * Notes when a connection is lost and found again: calls give up kLostAfter ms after the loss. (An idle
   * connection may not notice a dead server; the other one, busy, does: either one's loss counts.)
   */
  #watch(client: Client): void {
    const lost = () => {
      this.#lostAt ??= Date.now();
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('reconnecting', lost);
    client.on('ready', () => {
      this.#lostAt = undefined;
    });
  }

  /** How long the server has been out of reach (0: it answers). */
  lostFor(): number {
    if (this.#lostAt === undefined) return 0;
    return Date.now() - this.#lostAt;
  }

  async #connect(client: Client, within = kConnectDeadline): Promise<void> {
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    // What the last try failed with, for the message; a refusal that trying again cannot change (a password,
    // a database number) fails the connect at once.
    let lastError: unknown;
    let onError: ((error: unknown) => void) | undefined;
    const deadline = new Promise<never>((_, reject) => {
      const fail = () => {
        const why = lastError === undefined ? '' : ` (the last try: ${failureReason(lastError)})`;
        reject(new ConnectionError(this.shown, `no connection after ${within} ms${why}`, { cause: lastError }));
      };
      timer = setTimeout(fail, within);
      onError = (error) => {
        lastError = error;
        if (refusedForGood(error)) reject(new ConnectionError(this.shown, failureReason(error), { cause: error }));
      };
      client.on('error', onError);
    });
    const connecting = client.connect();
    // Held while it connects, so that a failed try is tried again until `within` (#newClient). After
    // connect(): what hold() connects again is only a client that is not open.
    this.hold();
    try {
      await Promise.race([connecting, deadline]);
    } catch (error) {
      client.destroy?.();
      this.#lostAt ??= started;
      if (error instanceof ConnectionError) throw error;
      throw new ConnectionError(this.shown, failureReason(error), { cause: error });
    } finally {
      clearTimeout(timer);
      if (onError !== undefined) client.off('error', onError);
      this.release();
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether a lost connection is not made again now (#newClient): the link closed, or nothing waits on it. */
  #stopReconnecting(): boolean {
    return this.#closed || this.#holds === 0;
  }

  /** Something waits on this link: keep the process alive until release(). */
  hold(): void {
    if (this.#holds++ === 0 && !this.#closed) {
      this.#client.ref();
      this.#blocker?.ref();
      // A connection lost while nothing waited was not made again (#newClient): it is now.
      for (const client of [this.#client, this.#blocker])
        if (client !== undefined && client.isOpen === false) client.connect().catch(() => {});
    }
  }

  release(): void {
    if (--this.#holds === 0 && !this.#closed) {
      this.#client.unref();
      this.#blocker?.unref();
    }
  }

  /** Sends one command; replies keep bulk strings as Buffers when `buffers`. */
  async call<T>(args: readonly (string | Buffer)[], buffers = false, late?: Late, loadingSince?: number): Promise<T> {
    // While node-redis reconnects it queues the command: bound the wait by what is left of kLostAfter, but
    // give every call long enough to see a server that just came back (reconnection tries every 500 ms).
    const left = Math.max(kLostAfter - this.lostFor(), kLastChance);
    this.#checkAnswering();
    this.hold();
    try {
      const client = this.#client;
      const sent = client.sendCommand(args, this.#options(buffers, left));
      // An answer read as buffers carries items (a fetch): its size is not known beforehand.
      const reply = await this.#answers.track<T>(sent, client, left, byteLength(args), buffers, late);
      this.#lostAt = undefined;
      return reply;
    } catch (error) {
      // A server still loading its data after a restart refuses every command (nothing ran): it is not there
      // yet, as while it is down. Ask again until it is taken for lost, counted for this call (the link's own
      // clock restarts whenever a command allowed while loading, such as a probe's PING, is answered).
      loadingSince ??= Date.now();
      if (!this.#isLoading(error) || this.#closed || Date.now() - loadingSince >= kLostAfter)
        throw this.#failure(error);
    } finally {
      this.release();
    }
    await new Promise((resolve) => setTimeout(resolve, kLoadingRetryMs));
    return await this.call<T>(args, buffers, late, loadingSince);
  }

  /** A LOADING error reply: the server restarted and is reading its data (and counts as not there until done). */
  #isLoading(error: unknown): boolean {
    if (!(error instanceof this.#redis.ErrorReply) || !error.message.startsWith('LOADING')) return false;
    this.#lostAt ??= Date.now();
    return true;
  }

  /** Runs a Lua script: the first time on this link with its text (EVAL), then by its digest (EVALSHA). */
  async script<T>(
    source: string,
    keys: readonly string[],
    args: readonly (string | Buffer)[],
    buffers = false,
    late?: Late,
  ): Promise<T> {
    // Its first use on this link: EVAL, which runs in the order it was sent and caches the script on the
    // server, so that later uses (EVALSHA) sent after it find it. A SCRIPT LOAD first would let commands sent
    // after this one run before it (a put, then a getNowait() of the same handle, found nothing).
    const run = () => {
      const sha = this.#scripts.get(source);
      if (sha === undefined) this.#scripts.set(source, createHash('sha1').update(source).digest('hex'));
      return this.#evalsha<T>(sha, source, keys, args, buffers, late);
    };
    try {
      return await run();
    } catch (error) {
      // A server restarted without persistence lost the stream's consumer group: make it again, once.
      if (!isNoGroup(error) || !(await this.regroup(keys.slice(0, 1)))) throw error;
      return await run();
    }
  }

  /** EVALSHA `sha` (EVAL when undefined, or when the server does not have it: a restart emptied its cache). */
  async #evalsha<T>(
    sha: string | undefined,
    source: string,
    keys: readonly string[],
    args: readonly (string | Buffer)[],
    buffers: boolean,
    late: Late | undefined,
  ): Promise<T> {
    // A late NOSCRIPT means it did not run: what EVAL then does is the answer.
    const lateEval =
      late &&
      ((ok: boolean, value: unknown) => {
        if (ok || !(value instanceof this.#redis.ErrorReply) || !/NOSCRIPT/.test(value.message)) late(ok, value);
        else
          this.call(['EVAL', source, String(keys.length), ...keys, ...args], buffers, late).then(
            (v) => late(true, v),
            (e) => {
              if (!willAnswerLate(e)) late(false, e); // else its own late answer tells
            },
          );
      });
    try {
      if (sha === undefined)
        return await this.call<T>(['EVAL', source, String(keys.length), ...keys, ...args], buffers, late);
      return await this.call<T>(['EVALSHA', sha, String(keys.length), ...keys, ...args], buffers, lateEval);
    } catch (error) {
      if (!(error instanceof ProcessError) || !/NOSCRIPT/.test(error.message)) throw error;
      return await this.call<T>(['EVAL', source, String(keys.length), ...keys, ...args], buffers, late);
    }
  }

  /** The queue of stream `key` can make its consumer group again with `regroup` (until forgetGroup()). */
  onLostGroup(key: string, regroup: () => Promise<void>): void {
    this.#regroupers.set(key, regroup);
  }

  forgetGroup(key: string): void {
    this.#regroupers.delete(key);
  }

  /** Makes the consumer groups of the streams `keys` again; false if none of them is an open queue's. */
  async regroup(keys: readonly string[]): Promise<boolean> {
    const regroupers = keys.map((key) => this.#regroupers.get(key)).filter((r) => r !== undefined);
    await Promise.all(regroupers.map((regroup) => regroup()));
    return regroupers.length > 0;
  }

  /**
   * A blocking read on the second connection, which only this reader uses: resolves with the reply (null
   * when `blockMs` passed, or unblock() ended it).
   */
  async blocking<T>(args: readonly (string | Buffer)[], blockMs: number, late?: Late): Promise<T> {
    this.#blockingNow = true;
    this.#unblockWanted = false;
    this.#readSeq++;
    try {
      return await this.#blocking<T>(args, blockMs, late);
    } finally {
      this.#blockingNow = false;
    }
  }

  /** A blocking read is under way (connecting, asking the connection's id, or sent). */
  #blockingNow = false;
  /** Which blocking read is (or was last) under way. */
  #readSeq = 0;
  /** unblock() came while the read's connection id was not known yet: the read is not sent. */
  #unblockWanted = false;

  async #blocking<T>(args: readonly (string | Buffer)[], blockMs: number, late: Late | undefined): Promise<T> {
    if (this.#blocker === undefined) {
      const blocker = Link.#newClient(this.#redis, this.url, () => this.#stopReconnecting());
      // Within what is left of kLostAfter, if the server is already missing.
      await this.#connect(blocker, Math.max(Math.min(kConnectDeadline, kLostAfter - this.lostFor()), 500));
      this.#watch(blocker);
      if (this.#closed) {
        blocker.destroy();
        throw new ConnectionError(this.shown, 'the link was closed');
      }
      this.#blocker = blocker;
      if (this.#holds === 0) blocker.unref();
      this.#blockerId = undefined;
    }
    // Reconnecting: say so now rather than queue a read that would wait out its whole timeout.
    if (this.#blocker.isReady !== true) throw new ConnectionError(this.shown, 'the connection was lost (reconnecting)');
    this.#checkAnswering();
    this.hold();
    try {
      const blocker = this.#blocker;
      this.#blockerId ??= await this.#answers.track<number>(
        blocker.sendCommand(['CLIENT', 'ID'], this.#options(false, kLostAfter)),
        blocker,
        kLostAfter,
        0,
        false,
      );
      if (this.#unblockWanted) return null as T;
      const reply = await this.#answers.track<T>(
        blocker.sendCommand(args, this.#options(true, blockMs + kLostAfter)),
        blocker,
        blockMs + kLostAfter,
        byteLength(args),
        true,
        late,
      );
      this.#lostAt = undefined;
      return reply;
    } catch (error) {
      // A reconnected socket is another client: ask its id again.
      this.#blockerId = undefined;
      throw this.#failure(error);
    } finally {
      this.release();
    }
  }

  /**
   * Ends the blocking read in progress now (it answers null), so that the reader can read other streams. The
   * UNBLOCK goes on the other connection, so it may reach the server before the read does: then it unblocks
   * nothing (0), and is sent again while that read is still under way.
   */
  unblock(): void {
    this.#unblock(this.#readSeq, 20);
  }

  #unblock(read: number, tries: number): void {
    if (!this.#blockingNow || this.#readSeq !== read) return;
    const id = this.#blockerId;
    if (id === undefined) {
      this.#unblockWanted = true;
      return;
    }
    this.call<number>(['CLIENT', 'UNBLOCK', String(id)]).then(
      (unblocked) => {
        if (unblocked === 0 && tries > 1) setTimeout(() => this.#unblock(read, tries - 1), 1);
      },
      () => {},
    );
  }

  /** Rejects at once while commands given up on are still unanswered: the server is not answering. */
  #checkAnswering(): void {
    if (this.#answers.stuck)
      throw new ConnectionError(this.shown, `no answer for ${this.lostFor()} ms (the server is stopped, or cut off)`);
  }

  /** Whether the server answers a PING within kProbeMs, on a connection of its own. */
  async #probe(): Promise<boolean> {
    // kProbeMs of this thread's own time: a stretch it spent blocked (a ...Sync call) counts as one tick, and the
    // last look comes after the turn's poll phase, so that a PONG that waits unread counts.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      let waited = 0;
      let last = Date.now();
      timer = setInterval(() => {
        const now = Date.now();
        waited += Math.min(now - last, 2 * kProbeTickMs);
        last = now;
        if (waited < kProbeMs) return;
        clearInterval(timer);
        setImmediate(() => reject(new Error('no answer')));
      }, kProbeTickMs);
    });
    late.catch(() => {});
    try {
      // One that stopped reconnecting (its connection dropped while nothing held the link) is made anew.
      if (this.#prober !== undefined && this.#prober.isOpen === false) {
        this.#prober.destroy?.();
        this.#prober = undefined;
      }
      if (this.#prober === undefined) {
        const prober = Link.#newClient(this.#redis, this.url, () => this.#stopReconnecting());
        this.#prober = prober;
        await Promise.race([prober.connect(), late]);
        prober.unref();
      }
      // No timeout of node-redis's own: it would fire in the timers phase, before an answer waiting is read.
      await Promise.race([this.#prober.sendCommand(['PING']), late]);
      return true;
    } catch {
      this.#prober?.destroy?.();
      this.#prober = undefined;
      return false;
    } finally {
      clearInterval(timer);
    }
  }

  /**
   * `client`'s connection is dead though the server answers (cut off silently): close it, which fails the
   * commands it carries as a dropped connection does, and open it again.
   */
  #reset(client: Client): void {
    if (this.#closed) return;
    if (client === this.#blocker) this.#blockerId = undefined;
    try {
      client.destroy();
    } catch {}
    client.connect().then(
      () => {
        if (this.#closed) client.destroy();
        else if (this.#holds === 0) client.unref();
      },
      () => {},
    );
  }

  /** Whether the server answers now (after a loss: once node-redis reconnected). */
  get ready(): boolean {
    return this.#client.isReady === true;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const clients = [this.#client, this.#blocker].filter((c) => c !== undefined);
    await Promise.all(
      clients.map(async (c: Client) => {
        try {
          // The blocking connection may sit in a read for seconds: drop it rather than wait. So is one that
          // does not answer (a graceful close waits for the replies it owes).
          if (c === this.#blocker || c.isReady !== true || this.#answers.stuck) c.destroy();
          else {
            let timer: NodeJS.Timeout | undefined;
            const late = new Promise<'late'>((resolve) => {
              timer = setTimeout(() => resolve('late'), kLostAfter);
            });
            if ((await Promise.race([c.close(), late]).finally(() => clearTimeout(timer))) === 'late') c.destroy();
          }
        } catch {
          c.destroy?.();
        }
      }),
    );
    this.#answers.stop();
    this.#prober?.destroy?.();
  }

  #options(buffers: boolean, timeout: number): object {
    return buffers ? { timeout, typeMapping: { [this.#redis.RESP_TYPES.BLOB_STRING]: Buffer } } : { timeout };
  }

  /** A reply error stays what the server said; anything else means the server is out of reach. */
  #failure(error: unknown): Error {
    if (this.#isLoading(error))
      return new ConnectionError(this.shown, 'the server is still loading its data (LOADING)', { cause: error });
    if (error instanceof this.#redis.ErrorReply)
      return new ProcessError(`Redis: ${error.message}`, ErrorCode.Process, { cause: error });
    if (error instanceof ProcessError && !(error instanceof ConnectionError)) return error;
    this.#lostAt ??= Date.now();
    if (error instanceof ConnectionError) return error;
    const message = failureReason(error);
    if (this.#closed) return new ConnectionError(this.shown, 'the connection was closed', { cause: error });
    return new ConnectionError(this.shown, message, { cause: error });
  }
}
