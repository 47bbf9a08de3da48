// A throwaway redis-server per test: own port, own temp dir, no RDB snapshots, so tests never share state with
// each other or with a system redis on 6379. Invariants:
// - No redis-server outlives this node process: every spawned one is SIGKILLed from a process 'exit' hook.
//   That hook only runs if node can exit, so the child and its pipes are unref'd: a test that fails before
//   stop() must not keep uvu (which sets exitCode and waits for the loop to drain) alive forever.
// - Every wait here has its own ref'd deadline timer: with the child unref'd, nothing else would keep node
//   alive while we wait for it, and a hang must fail rather than freeze CI.
// - Readiness is a raw RESP PING over node:net, so the harness works before (and independently of) any npm
//   redis client, and tests of a client cannot be masked by a bug in the same client.
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, rmSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';

const HOST = '127.0.0.1';
const START_DEADLINE_MS = 10_000;
const STOP_GRACE_MS = 3_000;
const PORT_ATTEMPTS = 5;
const TAIL_CHARS = 4_000;

export interface RedisServer {
  /** `redis://127.0.0.1:PORT` */
  url: string;
  port: number;
  /** The server's working dir (AOF, logs); removed by stop(). */
  dir: string;
  /** The current redis-server's pid (a new one after restart()). */
  pid: number;
  /** SIGTERM, then SIGKILL after 3 s; removes `dir`. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL (a crash: no AOF rewrite, no shutdown save); resolves when the process has exited. */
  kill9(): Promise<void>;
  /**
   * Starts a new server on the same port, dir and persistence options; resolves once it answers PING. After
   * kill9() it restarts from what is on disk; if the server is still running it is first shut down cleanly
   * (SIGTERM). Rejects after stop(), whose dir is gone.
   */
  restart(): Promise<void>;
}

export interface RedisOptions {
  /** `--appendonly yes` (with `--appendfsync always`, so an acknowledged write survives kill9). Default false. */
  appendonly?: boolean;
  /** `--key-load-delay`: microseconds the server waits per key it loads at start (it answers LOADING meanwhile). */
  keyLoadDelayUs?: number;
  /** `--enable-debug-command local` (DEBUG POPULATE makes ballast). */
  debug?: boolean;
}

/** The absolute path of `redis-server` on PATH, else undefined. */
export function redisServerPath(): string | undefined {
  for (const entry of (process.env.PATH ?? '').split(delimiter)) {
    if (entry === '') continue;
    const candidate = resolve(entry, 'redis-server');
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}

/** The one line a redis test file prints instead of registering tests when redis-server is missing. */
export function redisSkipNote(): string {
  return 'Redis tests skipped: redis-server is not on PATH (install it: apt-get install -y redis-server)';
}

// Every live child and the dir of every server not yet stop()ped, for the exit hook.
const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
process.on('exit', () => {
  for (const child of liveChildren) {
    try {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  // Best effort: a just-killed server may still be being reaped by the kernel.
  for (const dir of liveDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {}
  }
});

/** Starts a redis-server on a free 127.0.0.1 port in a new temp dir; resolves once it answers PING. */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const binary = redisServerPath();
  if (binary === undefined) throw new Error(redisSkipNote());
  const dir = await mkdtemp(join(tmpdir(), 'mpthreads-redis-'));
  liveDirs.add(dir);
  const appendonly = options.appendonly ?? false;

  // The port is free when we look but may be taken before redis binds it; then look again.
  let running: Running | undefined;
  let port = 0;
  let lastError: unknown;
  for (let attempt = 0; attempt < PORT_ATTEMPTS && running === undefined; attempt++) {
    port = await freePort();
    try {
      running = await launch(binary, port, dir, appendonly, options);
    } catch (error) {
      lastError = error;
      if (!(error instanceof BindError)) break;
    }
  }
  if (running === undefined) {
    liveDirs.delete(dir);
    await rm(dir, { recursive: true, force: true });
    throw lastError;
  }

  let current: Running = running;
  let stopping: Promise<void> | undefined;
  const server: RedisServer = {
    url: `redis://${HOST}:${port}`,
    port,
    dir,
    get pid() {
      return current.child.pid!;
    },
    stop() {
      stopping ??= (async () => {
        await terminate(current);
        liveDirs.delete(dir);
        await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
    async kill9() {
      if (current.exited.done) return;
      current.child.kill('SIGKILL');
      await deadline(current.exited.promise, START_DEADLINE_MS, 'redis-server exit after SIGKILL');
    },
    async restart() {
      if (stopping !== undefined) throw new Error(`redis-server on port ${port} was stopped: its dir is gone`);
      await terminate(current);
      current = await launch(binary, port, dir, appendonly, options);
    },
  };
  return server;
}

/** Sends one inline command (e.g. `SET k v`) and resolves with the raw RESP reply (simple, error, integer or bulk). */
export function sendRaw(port: number, command: string, ms = 2_000): Promise<string> {
  return request(port, `${command}\r\n`, completeReply, ms);
}

class BindError extends Error {}

interface Running {
  child: ChildProcess;
  exited: { done: boolean; promise: Promise<void> };
  tail(): string;
}

function launch(
  binary: string,
  port: number,
  dir: string,
  appendonly: boolean,
  options: RedisOptions = {},
): Promise<Running> {
  const keyLoadDelayUs = options.keyLoadDelayUs ?? 0;
  const args = [
    '--port',
    String(port),
    '--bind',
    HOST,
    '--dir',
    dir,
    '--save',
    '',
    '--daemonize',
    'no',
    '--protected-mode',
    'no',
    '--appendonly',
    appendonly ? 'yes' : 'no',
    '--appendfsync',
    'always',
    '--loglevel',
    'warning',
    ...(keyLoadDelayUs > 0 ? ['--key-load-delay', String(keyLoadDelayUs)] : []),
    ...(options.debug === true ? ['--enable-debug-command', 'local'] : []),
  ];
  const child = spawn(binary, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);
  child.unref();
  let output = '';
  for (const stream of [child.stdout!, child.stderr!]) {
    (stream as Socket).unref();
    stream.setEncoding('utf8').on('data', (d: string) => {
      output = (output + d).slice(-TAIL_CHARS);
    });
  }
  const exited = { done: false, promise: Promise.resolve() };
  exited.promise = new Promise<void>((resolveExit) => {
    const onExit = () => {
      exited.done = true;
      liveChildren.delete(child);
      resolveExit();
    };
    child.once('exit', onExit);
    child.once('error', onExit); // spawn failure: there will be no 'exit'
  });
  const running: Running = { child, exited, tail: () => output.trim() };

  return (async () => {
    const until = Date.now() + START_DEADLINE_MS;
    const failure = (why: string) => {
      const tail = running.tail();
      const message = `redis-server on port ${port} ${why}${tail === '' ? '' : `; its output ends:\n${tail}`}`;
      return /Address already in use/i.test(tail) ? new BindError(message) : new Error(message);
    };
    const deadlineTimer = setTimeout(() => {}, START_DEADLINE_MS); // keeps node alive while we poll
    try {
      while (true) {
        if (exited.done)
          throw failure(`exited (code ${child.exitCode}, signal ${child.signalCode}) before answering PING`);
        if (Date.now() > until) {
          child.kill('SIGKILL');
          throw failure(`did not answer PING within ${START_DEADLINE_MS} ms`);
        }
        const pong = await request(port, 'PING\r\n', completeReply, 1_000).catch(() => '');
        // +PONG could come from another process that won a race for the port; make sure it is ours.
        if (pong.startsWith('+PONG')) {
          const info = await request(port, 'INFO server\r\n', completeReply, 1_000).catch(() => '');
          if (info.includes(`process_id:${child.pid}\r\n`)) return running;
          if (info !== '') {
            child.kill('SIGKILL');
            throw new BindError(`port ${port} is answered by another redis-server`);
          }
        }
        await sleep(exited.done ? 0 : 25);
      }
    } finally {
      clearTimeout(deadlineTimer);
    }
  })();
}

/** SIGTERM, SIGKILL after the grace period; resolves when the process has exited. */
async function terminate(running: Running): Promise<void> {
  if (running.exited.done) return;
  running.child.kill('SIGTERM');
  const timer = setTimeout(() => running.child.kill('SIGKILL'), STOP_GRACE_MS);
  try {
    await deadline(running.exited.promise, STOP_GRACE_MS + START_DEADLINE_MS, 'redis-server exit');
  } finally {
    clearTimeout(timer);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, HOST, () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => (port > 0 ? resolvePort(port) : reject(new Error('no port from listen(0)'))));
    });
  });
}

/** Byte length of the first complete RESP reply in `data` (arrays not supported), or 0 if it is incomplete. */
function completeReply(data: Buffer): number {
  const eol = data.indexOf('\r\n');
  if (eol < 0) return 0;
  if (data[0] !== 0x24 /* $ */) return eol + 2;
  const length = Number(data.subarray(1, eol).toString());
  if (length < 0) return eol + 2;
  const end = eol + 2 + length + 2;
  return data.length >= end ? end : 0;
}

function request(port: number, payload: string, complete: (data: Buffer) => number, ms: number): Promise<string> {
  return new Promise((resolveReply, reject) => {
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => finish(new Error(`no reply from port ${port} within ${ms} ms`)), ms);
    const socket = createConnection({ host: HOST, port }, () => socket.write(payload));
    function finish(error?: Error, reply?: string) {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolveReply(reply!);
    }
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const n = complete(data);
      if (n > 0) finish(undefined, data.subarray(0, n).toString());
    });
    socket.on('error', (error) => finish(error));
    socket.on('close', () => finish(new Error(`port ${port} closed the connection before a full reply`)));
  });
}

function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

let noted = false;
/**
 * Registers a file's Redis tests (`register` runs now) when redis-server is on PATH; otherwise prints the skip
 * note, once for the whole run, and registers nothing.
 */
export function whenRedis(register: () => void): void {
  if (redisServerPath() !== undefined) {
    register();
    return;
  }
  if (!noted) console.log(redisSkipNote());
  noted = true;
}
