// The worker side of a Process, imported by workers/bootstrap.mjs, which calls the entry it registers: set up
// who we are, import the task module, decode the args (after the import: classes it registers arrive as
// instances), call the target, and exit with Python's exit codes (0 returned, 1 threw, n for process.exit(n)).
// Queues hand over what they buffer in the 'exit' event (context.ts: flushOnExit), however the thread exits.
import { parentPort, threadId } from 'node:worker_threads';
import { runTaskEndHooks, setImporting, setThreadContext } from './context.ts';
import { registerEntry } from './entries.ts';
import { watchForStall } from './stall.ts';
import { ProcessError, describe, serializeError, ErrorCode } from './errors.ts';
import './index.ts'; // registers every handle kind: handles may arrive later inside messages too
import './redis/context.ts'; // and a queue on a server (its client is loaded only if one arrives)
import { activeChildren } from './process.ts';
import { setHubPort } from './queue/hub-client.ts';
import { adoptDeadThreads, recordDeath, recordParent } from './sync/threads.ts';
import { decodeItem } from './wire/decode.ts';
import { Kind, PROTOCOL_TAG, type BootData, type ErrorMessage } from './protocol.ts';

function report(error: unknown): void {
  // With its cause and own properties when the platform can copy them; without, when it cannot.
  try {
    const message: ErrorMessage = { [PROTOCOL_TAG]: Kind.Error, error: serializeError(error) };
    parentPort!.postMessage(message);
  } catch {
    const message: ErrorMessage = { [PROTOCOL_TAG]: Kind.Error, error: serializeError(error, false) };
    parentPort!.postMessage(message);
  }
}

export async function fail(error: unknown): Promise<never> {
  report(error);
  process.exit(1);
}

/**
 * Why `name` was not found, and what to pass instead: the export that holds a function of that name (the
 * target was exported under another name), or what the export is, or which functions the module exports.
 */
function why(module: Record<string, unknown>, name: string): string {
  const functions: [exported: string, fn: (...args: unknown[]) => unknown][] = [];
  for (const exported of Object.keys(module)) {
    try {
      const value = module[exported];
      if (typeof value === 'function') functions.push([exported, value as (...args: unknown[]) => unknown]);
    } catch {
      // a binding still in its temporal dead zone (an import cycle): not a target anyway
    }
  }
  const renamed = functions.filter(([, fn]) => fn.name === name).map(([exported]) => exported);
  if (renamed.length > 0) {
    return `: the function ${name} is exported as ${renamed.map((e) => `'${e}'`).join(' and ')}; pass target: '${renamed[0]}', or export it as '${name}'`;
  }
  if (name in module) {
    try {
      return `: its export "${name}" is ${describe(module[name])}`;
    } catch {
      return `: its export "${name}" was not initialized when the module finished loading`;
    }
  }
  // `new Process({ target: () => ... })`: JavaScript names such a function after its property.
  if (name === 'target') {
    return ': a function written in place (`target: () => ...`) is named "target" after its property, and no worker can run it; export it from the module and pass it (or its name)';
  }
  if (functions.length === 0) return ': it exports no function';
  const list = functions
    .slice(0, 10)
    .map(([exported]) => exported)
    .join(', ');
  return `; the functions it exports are ${list}${functions.length > 10 ? ', …' : ''}`;
}

/**
 * Sets up who this worker is and imports its task module (refusing, meanwhile, to start processes from its top
 * level), then decodes the args. Returns them with the module, or reports why not and exits.
 */
export async function load(boot: BootData): Promise<{ module: Record<string, unknown>; args: unknown[] }> {
  setThreadContext({ ...boot.context, self: { ...boot.context.self, pid: threadId } });
  adoptDeadThreads(boot.threads);
  recordParent(threadId, boot.context.parent?.pid ?? 0);
  // A lock this thread holds is taken over by the next acquire once its death is on record (sync/threads.ts).
  process.on('exit', () => recordDeath(threadId));
  if (boot.hub !== undefined) setHubPort(boot.hub);
  let module: Record<string, unknown>;
  const unwatch = watchForStall(
    () =>
      fail(
        new ProcessError(
          `cannot load module ${boot.module} for target "${boot.target}": its top level awaits a promise that can never settle (the thread has nothing left to wait for: no timer, open port or I/O)`,
          ErrorCode.ModuleLoad,
        ),
      ),
    true,
  );
  try {
    setImporting(boot.module);
    module = (await import(boot.compiled ?? boot.module)) as Record<string, unknown>;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    // A top level that starts a process without `if (isMainThread)`: the parent's error says so by its code too.
    const unguarded = error instanceof ProcessError && error.code === ErrorCode.StartWhileImporting;
    return fail(
      new ProcessError(
        `cannot load module ${boot.module} for target "${boot.target}": ${reason}`,
        unguarded ? ErrorCode.StartWhileImporting : ErrorCode.ModuleLoad,
        { cause: error },
      ),
    );
  } finally {
    unwatch();
    setImporting(undefined);
  }
  try {
    // Decoded once the task module is loaded: classes it registers (registerClass) arrive as instances.
    return { module, args: boot.args === null ? [] : (decodeItem(boot.args, 0) as unknown[]) };
  } catch (error) {
    return fail(error);
  }
}

/** The export `name` of `module` as a function, or the error that says why it is not one (and what to pass). */
export function exported(
  module: Record<string, unknown>,
  name: string,
  moduleUrl: string,
): ((...args: unknown[]) => unknown) | ProcessError {
  let value: unknown;
  try {
    value = module[name];
  } catch {
    value = undefined;
  }
  if (typeof value === 'function') return value as (...args: unknown[]) => unknown;
  return new ProcessError(
    `target "${name}" is not a function exported by ${moduleUrl}${why(module, name)}`,
    ErrorCode.TargetNotFound,
  );
}

export async function main(boot: BootData): Promise<void> {
  const { module, args } = await load(boot);
  const target = exported(module, boot.target, boot.module);
  if (target instanceof ProcessError) return fail(target);
  let failed = false;
  const unwatch = watchForStall(
    () =>
      fail(
        new ProcessError(
          `target "${boot.target}" of ${boot.module} returned a promise that can never settle: the thread has nothing left to wait for (no timer, open port or I/O)`,
          ErrorCode.Deadlock,
        ),
      ),
    true,
  );
  try {
    await target(...args);
  } catch (error) {
    failed = true;
    report(error);
  } finally {
    unwatch();
  }
  // Node reports a promise rejected and left unhandled once the current task's microtasks have run; exiting
  // inside them would end the thread as if nothing had failed. One macrotask lets it report the rejection first
  // (as an uncaught error: exit code 1, and `error`), as the main thread would crash on it.
  await new Promise((resolve) => setImmediate(resolve));
  await runTaskEndHooks();
  await joinChildren();
  process.exit(failed ? 1 : 0);
}

/**
 * Waits for the processes this one started that are not daemons, as Python does when a process ends: a
 * worker's workers die with it, so exiting first would stop them without a word. Daemons stop with it.
 */
async function joinChildren(): Promise<void> {
  for (let children = activeChildren(); children.length > 0; children = activeChildren()) {
    const waiting = children.filter((child) => !child.daemon);
    if (waiting.length === 0) return;
    await Promise.all(waiting.map((child) => child.join()));
  }
}

registerEntry('process', main);
