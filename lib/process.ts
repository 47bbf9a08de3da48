// Process: Python's multiprocessing.Process on a worker thread.
//
// Invariants:
//   #worker is set exactly when start() succeeded; #exitCode is null until its 'exit' event, then final.
//   #signal is set by terminate()/kill() before the worker is told to stop, so the exit code says how it
//     ended (-15/-9) rather than Node's generic 1.
//   Handles in args are told they moved (commit) only after the Worker constructor accepted the args.
//   A running Process is in this thread's `running` set; it leaves on 'exit'.
import { inspect } from 'node:util';
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ResourceLimits, TransferListItem, Worker } from 'node:worker_threads';
import { compileForWorker } from './compile.ts';
import {
  childExited,
  childNote,
  currentProcess,
  importingModule,
  nextChildIdentity,
  postBufferedPuts,
} from './context.ts';
import { bug, ProcessError, deserializeError, describe, ErrorCode } from './errors.ts';
import { abort, capture, commit } from './handles.ts';
import { checkOptions, checkTimeout } from './options.ts';
import { childHubPort } from './queue/hub-client.ts';
import { isProtocolMessage, Kind, PROTOCOL_TAG, type BootData, type WorkerMessage } from './protocol.ts';
import { claimSpare, prepareSpare } from './spare-worker.ts';
import { deadThreads, recordDeath } from './sync/threads.ts';
import { bootstrapUrl, processRuntime, startWorker, type Runtime } from './runtime.ts';

/** @internal Makes `process` run `runtime` instead of a target (a Pool's worker), its args moving `transfer`. */
export let configureProcess: (
  process: Process<any>,
  runtime: Runtime,
  transfer: readonly unknown[],
  onExit: (code: number, stopped: boolean) => void,
) => void;

/** A function a Process runs: sync or async, exported by its module; what it returns is ignored. */
export type ProcessTarget = (...args: any[]) => unknown;

/**
 * Options of `new Process()`. With a function `target`, `args` must fit its parameters (and be given when it
 * has required ones); with the export's name as a string, they are not checked.
 */
export type ProcessOptions<T extends ProcessTarget | string = ProcessTarget | string> = {
  /** The function to run, exported by `module`, or the name of that export. */
  target: T;
  /** The ES module that exports `target`: pass `import.meta.url` (a `file:` URL or a path). */
  module: string | URL;
  /** @default `Process-N` */
  name?: string;
  /**
   * A daemon process does not keep the program alive. @default the creating process's flag, as in Python
   * (`currentProcess().daemon`: false in the main thread)
   */
  daemon?: boolean;
  /** Heap limits for the worker (see Node's `Worker` `resourceLimits`). */
  resourceLimits?: ResourceLimits;
} & ArgsOption<T>;

/** `args`, required when the target has required parameters. */
type ArgsOption<T> = T extends ProcessTarget
  ? [] extends Parameters<T>
    ? { args?: Args<Parameters<T>> }
    : { args: Args<Parameters<T>> }
  : { args?: Args<unknown[]> };

/** Arguments for `target`, copied; Connections and queues anywhere inside arrive as working handles. */
type Args<P extends unknown[]> = Readonly<P>;

const typescriptModule = /\.[cm]?tsx?$/;

const running = new Set<Process>();

/** @internal Names a Process without a `name` `${prefix}-N` instead of `Process-N` (a Pool's workers, as Python's). */
export const kNamePrefix: unique symbol = Symbol('mpthreads.process.namePrefix');

/**
 * Runs `target(...args)` in a new worker thread.
 *
 * @example
 * export function greet(name: string) { console.log(`hello ${name}`); }
 * if (isMainThread) {
 *   const p = new Process({ target: greet, module: import.meta.url, args: ['world'] });
 *   p.start();
 *   await p.join();
 * }
 */
export class Process<T extends ProcessTarget | string = ProcessTarget | string> {
  readonly #target: string;
  readonly #module: URL;
  readonly #args: readonly unknown[];
  readonly #resourceLimits: ResourceLimits | undefined;
  readonly #identity: number[];
  #name: string;
  #daemon: boolean;
  #worker: Worker | undefined;
  #pid: number | undefined;
  /** How many join() calls wait: while any does, a daemon's worker keeps the program alive. */
  #joining = 0;
  #exitCode: number | null = null;
  #error: Error | undefined;
  #signal: number | undefined;
  #closed = false;
  #exited: Promise<void> | undefined;
  /** What the worker runs (see entries.ts): a target, or (a Pool's worker) the pool's task loop. */
  #runtime: Runtime = processRuntime;
  /** Ports and buffers moved with the args (a Pool's channel to its worker). */
  #transfer: readonly unknown[] | undefined;
  /**
   * Told the exit code when the worker exits, and whether terminate() or kill() stopped it (a Pool watching its
   * workers without keeping them alive; a worker's own process.exit(-15) gives the same code).
   */
  #onExit: ((code: number, stopped: boolean) => void) | undefined;

  static {
    configureProcess = (process, runtime, transfer, onExit) => {
      process.#runtime = runtime;
      process.#transfer = transfer;
      process.#onExit = onExit;
    };
  }

  constructor(options: ProcessOptions<T>) {
    const o = checkOptions(options, 'options', ['target', 'module', 'args', 'name', 'daemon', 'resourceLimits']);
    if (o.target === undefined)
      throw new TypeError('options.target is required: a function exported by options.module, or its name');
    this.#target = targetName(o.target);
    if (o.module === undefined)
      throw new TypeError('options.module is required: pass import.meta.url of the module that exports the target');
    this.#module = moduleUrl(o.module);
    if (o.args !== undefined && !Array.isArray(o.args))
      throw new TypeError(`options.args must be an array, got ${describe(o.args)}`);
    this.#args = (o.args as readonly unknown[] | undefined) ?? [];
    if (o.name !== undefined && typeof o.name !== 'string')
      throw new TypeError(`options.name must be a string, got ${describe(o.name)}`);
    if (o.daemon !== undefined && typeof o.daemon !== 'boolean')
      throw new TypeError(`options.daemon must be a boolean, got ${describe(o.daemon)}`);
    if (o.resourceLimits !== undefined) checkResourceLimits(o.resourceLimits);
    this.#resourceLimits = o.resourceLimits as ResourceLimits | undefined;
    this.#identity = nextChildIdentity();
    const prefix = (options as { [kNamePrefix]?: string })[kNamePrefix] ?? 'Process';
    this.#name = (o.name as string | undefined) ?? `${prefix}-${this.#identity.join(':')}`;
    // As Python's: inherited from the creating process (a daemon's children do not keep it running).
    this.#daemon = (o.daemon as boolean | undefined) ?? currentProcess().daemon;
  }

  get name(): string {
    return this.#name;
  }
  set name(value: string) {
    if (typeof value !== 'string') throw new TypeError(`name must be a string, got ${describe(value)}`);
    this.#name = value;
  }

  /** A daemon process does not keep the program alive; set it before `start()`. */
  get daemon(): boolean {
    return this.#daemon;
  }
  set daemon(value: boolean) {
    if (typeof value !== 'boolean') throw new TypeError(`daemon must be a boolean, got ${describe(value)}`);
    if (this.#worker !== undefined)
      throw new ProcessError('cannot change daemon of a process that has started', ErrorCode.ProcessStarted);
    this.#daemon = value;
  }

  /**
   * The worker's `threadId`: `undefined` before `start()`, kept after exit; after `close()`, a ProcessError
   * (ERR_PROCESS_CLOSED), as Python's.
   */
  get pid(): number | undefined {
    this.#checkNotClosed(); // as Python's
    return this.#pid;
  }

  /** `null` while running; 0 returned, 1 threw, n after `process.exit(n)`, -15 terminated, -9 killed. */
  get exitCode(): number | null {
    this.#checkNotClosed(); // as Python's exitcode
    return this.#exitCode;
  }

  /** What the target threw, rebuilt here with its class name, message and stack. */
  get error(): Error | undefined {
    return this.#error;
  }

  /**
   * Starts the worker. Throws if called twice, if args cannot be copied (nothing is moved then), or if called
   * from the top level of a task module that a worker is importing (the missing `isMainThread` guard).
   */
  start(): void {
    this.#checkNotClosed();
    if (this.#worker !== undefined) throw new ProcessError('cannot start a process twice', ErrorCode.ProcessStarted);
    const importing = importingModule();
    if (importing !== undefined) throw startedWhileImporting(this.#name, importing);
    const modulePath = fileURLToPath(this.#module);
    if (!existsSync(modulePath)) {
      throw new ProcessError(
        `cannot load module ${this.#module.href} for target "${this.#target}": no such file`,
        ErrorCode.ModuleLoad,
      );
    }
    const args = capture(this.#args, this.#transfer);
    const self = currentProcess();
    // A TypeScript task module compiled to JavaScript needs no loader in the worker: it starts as fast as one.
    const runtime = this.#runtime;
    const compiled = typescriptModule.test(modulePath) ? compileForWorker(runtime.url, modulePath) : undefined;
    const boot: BootData = {
      runtime: runtime.url,
      entry: runtime.entry,
      tsx: runtime.url.endsWith('.ts') || typescriptModule.test(modulePath),
      module: this.#module.href,
      target: this.#target,
      args: args.batch,
      threads: deadThreads(),
      context: {
        self: { name: this.#name, pid: -1, daemon: this.#daemon },
        parent: { name: self.name, pid: self.pid, daemon: self.daemon },
        identity: this.#identity,
      },
      ...compiled?.boot,
    };
    // The pid is the worker's threadId, only known once it exists: the worker patches it into its context.
    const useSpare = boot.tsx && this.#resourceLimits === undefined;
    let worker: Worker;
    const hub = childHubPort();
    boot.hub = hub.port;
    const transfer = [...args.transfer, hub.port] as TransferListItem[];
    // What this thread put before is numbered before anything the new process puts (context.ts).
    postBufferedPuts();
    try {
      worker =
        (useSpare ? claimSpare(boot, transfer) : undefined) ??
        startWorker(
          bootstrapUrl,
          {
            workerData: { [PROTOCOL_TAG]: boot },
            transferList: transfer,
            resourceLimits: this.#resourceLimits,
            name: this.#name,
          },
          compiled?.execArgv,
        );
    } catch (error) {
      abort(args);
      hub.port.close();
      throw error;
    }
    hub.started(worker.threadId);
    compiled?.deliver(worker);
    commit(args, `process "${this.#name}"`, worker.threadId);
    this.#worker = worker;
    this.#pid = worker.threadId;
    running.add(this);
    if (useSpare) prepareSpare(bootstrapUrl, runtime.url);
    worker.on('message', (message: unknown) => {
      if (isProtocolMessage(message)) this.#onMessage(message);
    });
    worker.on('error', (error) => this.#onError(error));
    this.#exited = new Promise((resolve) => {
      worker.once('exit', (code) => {
        recordDeath(this.#pid!);
        this.#exitCode = this.#signal ?? code;
        running.delete(this);
        childExited(this.#pid!);
        resolve();
        this.#onExit?.(this.#exitCode, this.#signal !== undefined);
      });
    });
    // Only after the 'message' listener: adding one refs the worker's port again, so a daemon unref'd
    // before it would keep the program alive after all.
    if (this.#daemon) worker.unref();
    else worker.ref();
  }

  /**
   * Resolves when the worker has exited, or when `timeout` ms have passed (check `isAlive()` then).
   * While it waits, even a daemon process keeps the program alive.
   */
  join(timeout?: number): Promise<void> {
    let ms: number;
    try {
      ms = checkTimeout(timeout, 'timeout');
      this.#checkNotClosed();
      if (this.#worker === undefined)
        throw new ProcessError('can only join a started process', ErrorCode.ProcessNotStarted);
    } catch (error) {
      return Promise.reject(error);
    }
    const worker = this.#worker;
    const exited = this.#exited!;
    if (this.#exitCode !== null) return exited;
    // Every join waiting keeps a daemon's worker referenced: the last one to end lets it go (the first one did,
    // under the joins still waiting, and the program exited before they resolved).
    if (this.#daemon && this.#joining++ === 0) worker.ref();
    const done = () => {
      if (this.#daemon && --this.#joining === 0 && this.#exitCode === null) worker.unref();
    };
    if (ms === Infinity) return exited.finally(done);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, Math.min(ms, 0x7fffffff));
    });
    return Promise.race([exited, timedOut]).finally(() => {
      clearTimeout(timer);
      done();
    });
  }

  /** True from `start()` until the worker has exited. */
  isAlive(): boolean {
    this.#checkNotClosed();
    return this.#worker !== undefined && this.#exitCode === null;
  }

  /** Stops the worker, even one spinning in a loop that never yields; exit code -15. */
  terminate(): void {
    this.#stop(-15);
  }

  /** Stops the worker at once; exit code -9. (Node has one way to stop a thread; only the code differs.) */
  kill(): void {
    this.#stop(-9);
  }

  /** Releases the Process object; throws while the worker is still running. */
  close(): void {
    if (this.#worker !== undefined && this.#exitCode === null)
      throw new ProcessError(
        'cannot close a process while it is still running; join() or terminate() it first',
        ErrorCode.ProcessRunning,
      );
    this.#closed = true;
  }

  #stop(signal: number): void {
    this.#checkNotClosed();
    if (this.#worker === undefined || this.#exitCode !== null) return;
    this.#signal ??= signal;
    void this.#worker.terminate();
    // On record now, not at 'exit': this thread may block next on a lock the worker held, and a blocked thread
    // runs no 'exit' handler. The worker runs no more of its code from here, but for the statement it is in.
    recordDeath(this.#pid!);
  }

  #onMessage(message: WorkerMessage): void {
    switch (message[PROTOCOL_TAG]) {
      case Kind.Error:
        this.#onError(deserializeError(message.error));
        return;
      case Kind.Note:
        childNote(this.#pid!, message.topic, message.data);
        return;
      default: {
        // Thrown here it would crash this thread: a worker's message must not do that, even a wrong one.
        const unknown: never = message[PROTOCOL_TAG];
        process.emitWarning(bug(`process: unknown message kind ${JSON.stringify(unknown)} from the worker`));
        return;
      }
    }
  }

  #onError(error: Error): void {
    if (this.#error !== undefined) return;
    this.#error = error;
    process.stderr.write(
      `Process ${this.#name} (pid ${this.#pid}):\n${error.stack ?? `${error.name}: ${error.message}`}\n`,
    );
  }

  #checkNotClosed(): void {
    if (this.#closed) throw new ProcessError('process object is closed', ErrorCode.ProcessClosed);
  }

  /** @internal */
  get [Symbol.toStringTag](): string {
    return `Process ${this.#name}`;
  }

  /** What console.log shows: Python's repr, `<Process name='Process-1' pid=3 stopped exitcode=0>`. */
  [inspect.custom](): string {
    const parts = [`name=${inspect(this.#name)}`];
    if (this.#closed) parts.push('closed');
    else if (this.#worker === undefined) parts.push('initial');
    else {
      parts.push(`pid=${this.#pid}`);
      if (this.#exitCode === null) parts.push('started');
      else parts.push('stopped', `exitcode=${this.#exitCode}`);
    }
    if (this.#daemon) parts.push('daemon');
    return `<Process ${parts.join(' ')}>`;
  }
}

/** The started children of this thread that have not exited yet. */
export function activeChildren(): Process[] {
  return [...running];
}

/**
 * Python's "An attempt has been made to start a new process before the current process has finished its
 * bootstrapping phase": without it, each worker would run the unguarded top level again and start workers
 * of its own, without end.
 */
function startedWhileImporting(name: string, module: string): ProcessError {
  return new ProcessError(
    `cannot start process "${name}" while this worker is still importing its task module ${module}. ` +
      'Every worker imports the module that exports its target, so code at the top level of that module runs ' +
      'again in each worker, and starting processes there would start workers without end. ' +
      'Put the code that starts processes under `if (isMainThread) { ... }` (import { isMainThread } from ' +
      "'mpthreads'), the analogue of Python's `if __name__ == '__main__':`, or move it into a function that " +
      'only the main thread calls.',
    ErrorCode.StartWhileImporting,
  );
}

function targetName(target: unknown): string {
  if (typeof target === 'string') {
    if (target === '') throw new TypeError('options.target must be a non-empty export name');
    return target;
  }
  if (typeof target === 'function') {
    // The worker imports options.module and calls its export named target.name: only that name travels.
    const name = target.name;
    if (name === '') {
      throw new TypeError(
        'options.target is an anonymous function: the worker calls the export of options.module named like the target; ' +
          "export a named function and pass it, or pass the export's name as a string",
      );
    }
    if (name.startsWith('bound ')) {
      throw new TypeError(
        `options.target is a bound function (${name}): the worker calls the export of options.module named like the target, ` +
          `so neither a bound this nor bound arguments can reach it; pass the exported function itself (target: ${name.slice(6) || '…'}) ` +
          'and its arguments in options.args',
      );
    }
    if (/^class\b/.test(Function.prototype.toString.call(target))) {
      throw new TypeError(
        `options.target is a class (${name}): the worker calls its target, and a class cannot be called without new; ` +
          'export a function that constructs it and pass that',
      );
    }
    return name;
  }
  throw new TypeError(`options.target must be a function or an export name, got ${describe(target)}`);
}

function moduleUrl(module: unknown): URL {
  if (module instanceof URL) return checkFileUrl(module);
  if (typeof module !== 'string' || module === '') {
    throw new TypeError(`options.module must be a file: URL or a path, got ${describe(module)}`);
  }
  if (module.startsWith('file:')) return checkFileUrl(new URL(module));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(module)) return checkFileUrl(new URL(module));
  return pathToFileURL(isAbsolute(module) ? module : resolve(module));
}

function checkFileUrl(url: URL): URL {
  if (url.protocol !== 'file:')
    throw new TypeError(`options.module must be a file: URL or a path, got ${JSON.stringify(url.href)}`);
  return url;
}

/** Node's Worker accepts any number here: a negative heap limit only kills the worker as out of memory. */
function checkResourceLimits(options: unknown): void {
  const limits = checkOptions(options, 'options.resourceLimits', [
    'maxYoungGenerationSizeMb',
    'maxOldGenerationSizeMb',
    'codeRangeSizeMb',
    'stackSizeMb',
  ]);
  for (const [key, value] of Object.entries(limits)) {
    if (value === undefined) continue;
    if (typeof value !== 'number') {
      throw new TypeError(`options.resourceLimits.${key} must be a number, got ${describe(value)}`);
    }
    if (!(value >= 0) || !Number.isFinite(value)) {
      throw new RangeError(
        `options.resourceLimits.${key} must be a number >= 0 (0: the default), got ${describe(value)}`,
      );
    }
  }
}
