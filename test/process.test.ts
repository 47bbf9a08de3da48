// Process: CPython's _TestProcess (Lib/test/_test_multiprocessing.py) ported to worker threads, plus the
// contract's error reporting, misuse errors, and "a program whose workers finished exits by itself".
//
// Synchronisation is by handshake only (a worker says "sleeping"/"spinning" through a pipe before the test
// acts). The only time limits are generous deadlines that turn a hang into a failure.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import * as assert from 'uvu/assert';
import {
  BufferTooShort,
  EOFError,
  Pipe,
  Process,
  ProcessError,
  Queue,
  activeChildren,
  currentProcess,
  isMainThread,
  parentProcess,
} from '../lib/index.ts';
import { captureStderr, deadline, eventually, rejects, suite, throws, track } from './_support/harness.ts';
import { run } from './_support/run-program.ts';
import { aliasedTask, recursion, reportSelf } from './fixtures/process-tasks.ts';

const tasks = new URL('./fixtures/process-tasks.ts', import.meta.url);
const root = fileURLToPath(new URL('..', import.meta.url));

type Extra = {
  name?: string;
  daemon?: boolean;
  module?: string | URL;
  resourceLimits?: { maxOldGenerationSizeMb: number };
};

function make(target: string | ((...args: any[]) => unknown), args: unknown[] = [], extra: Extra = {}): Process {
  return track(new Process({ target, module: tasks, args, ...extra }));
}

function start(target: string, args: unknown[] = [], extra: Extra = {}): Process {
  const p = make(target, args, extra);
  p.start();
  return p;
}

// ---------------------------------------------------------------------------------------------------------
const cpython = suite('Process: CPython _TestProcess');

cpython('test_process: args, name, pid, daemon, isAlive, activeChildren, exitCode 0', async () => {
  const [r, w] = Pipe<any>(false);
  const args = [w, 1, 2, { hello: 23, bye: 2.54 }];
  const p = make(reportSelf, args, { name: 'SomeProcess' }); // the target as the exported function itself
  p.daemon = true;

  assert.is(p.isAlive(), false);
  assert.is(p.daemon, true);
  assert.is(p.name, 'SomeProcess');
  assert.ok(Array.isArray(activeChildren()));
  assert.not.ok(activeChildren().includes(p));
  assert.is(p.exitCode, null);
  assert.is(p.pid, undefined);

  p.start();

  assert.is(p.exitCode, null);
  assert.is(p.isAlive(), true);
  assert.ok(activeChildren().includes(p));
  assert.type(p.pid, 'number');
  assert.ok(p.pid! > 0);
  throws(
    () => {
      p.daemon = false;
    },
    ProcessError,
    'changing daemon after start',
  );

  const report = await r.recv();
  assert.equal(report.args, [1, 2, { hello: 23, bye: 2.54 }]);
  assert.equal(report.current, { name: 'SomeProcess', pid: p.pid, daemon: true });
  assert.equal(report.parent, { name: 'MainProcess', pid: 0, daemon: false });
  assert.is(report.isMainThread, false);
  assert.is(report.activeChildren, 0, 'the child has no children of its own');

  await p.join();

  assert.is(p.exitCode, 0);
  assert.is(p.isAlive(), false);
  assert.not.ok(activeChildren().includes(p));
  assert.ok(p.pid! > 0, 'pid is kept after exit');
  assert.equal(currentProcess(), { name: 'MainProcess', pid: 0, daemon: false });
  assert.is(parentProcess(), null);
  assert.is(isMainThread, true);
});

cpython('test_daemon_argument: a Process made in a daemon takes its daemon flag by default', async () => {
  // Python: "The initial value is inherited from the creating process." Here it was false whatever the
  // creating process was, so a daemon's children kept it running until they finished.
  for (const daemon of [true, false]) {
    const [r, w] = Pipe<boolean>(false);
    const p = make('sendChildDaemonFlag', [w], { daemon });
    p.start();
    assert.is(await r.recv({ timeout: 20_000 }), daemon, `made in a ${daemon ? 'daemon' : 'non-daemon'}`);
    await p.join();
  }
});

cpython('default names are Process-N, counting up; options are validated at construction', () => {
  const p1 = new Process({ target: 'reportSelf', module: tasks });
  const p2 = new Process({ target: 'reportSelf', module: tasks });
  const n1 = Number(/^Process-(\d+)$/.exec(p1.name)?.[1]);
  const n2 = Number(/^Process-(\d+)$/.exec(p2.name)?.[1]);
  assert.ok(n1 > 0, p1.name);
  assert.is(n2, n1 + 1, `${p1.name} then ${p2.name}`);
  assert.is(p1.daemon, false);
  assert.is(new Process({ target: 'reportSelf', module: tasks, daemon: true }).daemon, true);

  const bad: [string, unknown][] = [
    ['no options', undefined],
    ['no target', { module: tasks }],
    ['a numeric target', { target: 42, module: tasks }],
    ['an anonymous target', { target: [() => {}][0], module: tasks }], // (a property would name it "target")
    ['an empty target', { target: '', module: tasks }],
    ['no module', { target: 'reportSelf' }],
    ['an http module', { target: 'reportSelf', module: 'https://example.com/tasks.js' }],
    ['args not an array', { target: 'reportSelf', module: tasks, args: 'abc' }],
    ['a numeric name', { target: 'reportSelf', module: tasks, name: 5 }],
    ['a string daemon', { target: 'reportSelf', module: tasks, daemon: 'yes' }],
    ['an unknown resource limit', { target: 'reportSelf', module: tasks, resourceLimits: { heapMb: 5 } }],
    ['a string resource limit', { target: 'reportSelf', module: tasks, resourceLimits: { stackSizeMb: '4' } }],
  ];
  for (const [what, options] of bad) {
    throws(() => new Process(options as never), TypeError, what);
  }
  // A negative heap limit started the worker, which then died as out of memory.
  const negative = throws(
    () => new Process({ target: 'reportSelf', module: tasks, resourceLimits: { maxOldGenerationSizeMb: -5 } }),
    RangeError,
    'a negative heap limit',
  );
  assert.match(negative.message, /maxOldGenerationSizeMb.*-5/);
  throws(
    () => {
      p1.daemon = 'yes' as unknown as boolean;
    },
    TypeError,
    'daemon = "yes"',
  );
  throws(
    () => {
      p1.name = 5 as unknown as string;
    },
    TypeError,
    'name = 5',
  );
});

/** CPython's _kill_process: start, check join(0)/join(t) leave it alive, handshake, stop, join. */
async function stopAfterHandshake(
  target: 'announceThenSleep' | 'announceThenSpin',
  how: 'terminate' | 'kill',
): Promise<number | null> {
  const [r, w] = Pipe<string>(false);
  const p = start(target, [w], { daemon: true });
  assert.is(p.isAlive(), true);
  assert.ok(activeChildren().includes(p));
  assert.is(p.exitCode, null);
  assert.is(await r.recv(), target === 'announceThenSleep' ? 'sleeping' : 'spinning');
  assert.is(await p.join(0), undefined);
  assert.is(p.isAlive(), true, `${target}: still alive after join(0)`);
  await p.join(50);
  assert.is(p.isAlive(), true, `${target}: still alive after join(50)`);
  p[how]();
  await deadline(p.join(), 10_000, `join() after ${how}()`);
  assert.is(p.isAlive(), false);
  assert.not.ok(activeChildren().includes(p));
  assert.is(p.error, undefined, 'being stopped is not an error');
  await rejects(r.recv(), EOFError, `recv() from a worker stopped by ${how}()`);
  await p.join(); // joining again is fine
  p[how](); // and stopping an exited process changes nothing
  return p.exitCode;
}

cpython('test_terminate: exitCode -15, for a sleeping worker and one spinning in for(;;){}', async () => {
  const [sleeping, spinning] = await Promise.all([
    stopAfterHandshake('announceThenSleep', 'terminate'),
    stopAfterHandshake('announceThenSpin', 'terminate'),
  ]);
  assert.is(sleeping, -15);
  assert.is(spinning, -15);
});

cpython('test_kill: exitCode -9, for a sleeping worker and one spinning in for(;;){}', async () => {
  const [sleeping, spinning] = await Promise.all([
    stopAfterHandshake('announceThenSleep', 'kill'),
    stopAfterHandshake('announceThenSpin', 'kill'),
  ]);
  assert.is(sleeping, -9);
  assert.is(spinning, -9);
});

cpython('test_sys_exit: process.exit(n) in the worker gives exitCode n', async () => {
  const cases: [number | undefined, number][] = [
    [undefined, 0],
    [0, 0],
    [3, 3],
    [8, 8],
  ];
  // (one of them names its module by a plain path rather than a URL)
  const ps = cases.map(([code], i) =>
    start('exitWith', code === undefined ? [] : [code], i === 2 ? { module: fileURLToPath(tasks) } : {}),
  );
  await Promise.all(ps.map((p) => p.join()));
  assert.equal(
    ps.map((p) => p.exitCode),
    cases.map(([, expected]) => expected),
  );
  assert.ok(
    ps.every((p) => p.error === undefined),
    'process.exit is not an error',
  );
});

cpython(
  'a target that throws or rejects: exitCode 1, error rebuilt with class name, message and stack, printed to stderr',
  async () => {
    const queue = new Queue<string>();
    const {
      result: [typeError, custom, rejected, uncaught, unhandled],
      stderr,
    } = await captureStderr(async () => {
      const ps = [
        start('throwTypeError', ['bad value'], { name: 'thrower' }),
        start('throwCustom', ['custom trouble'], { name: 'custom-thrower' }),
        start('rejectLater', ['async trouble'], { name: 'rejecter' }),
        start('throwFromCallback', ['uncaught trouble'], { name: 'uncaught' }),
        start('withUnhandledRejection', [queue, 'unhandled trouble'], { name: 'unhandled' }),
      ];
      await Promise.all(ps.map((p) => p.join()));
      return ps;
    });

    assert.is(typeError!.exitCode, 1);
    assert.instance(typeError!.error, TypeError);
    assert.is(typeError!.error!.name, 'TypeError');
    assert.is(typeError!.error!.message, 'bad value');
    assert.match(typeError!.error!.stack ?? '', /bad value/);
    assert.match(typeError!.error!.stack ?? '', /throwTypeError/, "the stack is the worker's");
    assert.match(typeError!.error!.stack ?? '', /process-tasks/);

    assert.is(custom!.exitCode, 1);
    assert.instance(custom!.error, Error);
    assert.is(custom!.error!.name, 'TaskFailure');
    assert.is(custom!.error!.message, 'custom trouble');
    assert.is((custom!.error as Error & { code?: unknown }).code, 'E_TASK_FAILURE');
    assert.match(custom!.error!.stack ?? '', /throwCustom/);

    assert.is(rejected!.exitCode, 1);
    assert.instance(rejected!.error, RangeError);
    assert.is(rejected!.error!.message, 'async trouble');

    // thrown from a callback, outside the target's own promise chain
    assert.is(uncaught!.exitCode, 1);
    assert.instance(uncaught!.error, Error);
    assert.is(uncaught!.error!.name, 'SyntaxError');
    assert.match(uncaught!.error!.message, /uncaught trouble/);

    // left unhandled as the target returned: Node reports it after the target's microtasks, and the thread
    // used to exit first, with exit code 0
    assert.is(unhandled!.exitCode, 1);
    assert.instance(unhandled!.error, TypeError);
    assert.is(unhandled!.error!.message, 'unhandled trouble');
    assert.is(await queue.get({ timeout: 10_000 }), 'put before', 'what it put is delivered');

    for (const name of ['thrower', 'custom-thrower', 'rejecter', 'uncaught', 'unhandled'])
      assert.ok(stderr.includes(name), `stderr names ${name}:\n${stderr}`);
    for (const message of ['bad value', 'custom trouble', 'async trouble', 'uncaught trouble', 'unhandled trouble'])
      assert.ok(stderr.includes(message), `stderr shows ${message}`);
  },
);

cpython(
  'an error whose properties cannot all be copied (a getter that throws, a function) keeps the rest',
  async () => {
    // The getter threw again while the error was described without values: the parent got 'cannot start target'
    // with the message lost; and one function dropped every object-valued property (found by review).
    const { result: ps } = await captureStderr(async () => {
      const ps = [start('throwAwkward', ['getter']), start('throwAwkward', ['function'])];
      await Promise.all(ps.map((p) => p.join()));
      return ps;
    });
    const [getter, fn] = ps.map((p) => p.error as Error & Record<string, unknown>);
    assert.is(getter!.message, 'awkward getter');
    assert.is(getter!.code, 'E_AWKWARD');
    assert.not.ok('bad' in getter!, 'the getter that throws is left out');
    assert.is(fn!.message, 'awkward function');
    assert.equal(fn!.details, { a: 1 });
    assert.is(fn!.code, 'E_AWKWARD');
    assert.not.ok('fn' in fn!, 'the function is left out');
  },
);

cpython(
  'a target whose promise can never settle (its thread left with nothing to wait for): exitCode 1 and an ERR_DEADLOCK error, not a silent exit code 13',
  async () => {
    const { result: p, stderr } = await captureStderr(async () => {
      const p = start('unsettledForever', [], { name: 'never-settles' });
      await p.join();
      return p;
    });
    assert.is(p.exitCode, 1);
    assert.instance(p.error, ProcessError);
    assert.is((p.error as ProcessError).code, 'ERR_DEADLOCK');
    assert.match(
      p.error!.message,
      /target "unsettledForever" of .*process-tasks.* returned a promise that can never settle/,
    );
    assert.ok(stderr.includes('never-settles'), `stderr names the process:\n${stderr}`);
    // A target whose own 'beforeExit' listener schedules the work that settles it is not taken for one.
    const waits = start('waitsForBeforeExit', [], { name: 'before-exit' });
    await waits.join();
    assert.is(waits.exitCode, 0, String(waits.error));
  },
);

cpython(
  'test_recursion: a child starts children of its own; each reports through a pipe',
  async () => {
    const [rconn, wconn] = Pipe<any>(false);
    await recursion(wconn, []); // the main thread plays the root, as in CPython
    const result: any[] = [];
    while (await rconn.poll()) result.push(await rconn.recv());

    assert.equal(
      result.map((m) => m.id ?? m),
      [[], [0], [0, 0], [0, 1], [1], [1, 0], [1, 1]],
    );
    const byId = new Map(result.map((m) => [JSON.stringify(m.id), m]));
    assert.is(byId.get('[]').name, 'MainProcess');
    for (const id of [[0], [1]]) {
      const child = byId.get(JSON.stringify(id));
      assert.is(child.parent, 'MainProcess');
      assert.match(child.name, /^Process-\d+$/);
      for (const i of [0, 1]) {
        const grandchild = byId.get(JSON.stringify([...id, i]));
        assert.is(grandchild.parent, child.name, 'a grandchild names its own parent');
        assert.is(grandchild.name, `${child.name}:${i + 1}`, 'names follow the identity path, as in Python');
      }
    }
  },
  60_000,
);

cpython("console.log shows a Process as Python's repr does: name, pid, state, exit code", async () => {
  const p = track(new Process({ target: 'exitWith', module: tasks, args: [3], name: 'shown' }));
  assert.is(inspect(p), "<Process name='shown' initial>");
  p.start();
  await p.join();
  assert.is(inspect(p), `<Process name='shown' pid=${p.pid} stopped exitcode=3>`);
  p.close();
  assert.is(inspect([p]), "[ <Process name='shown' closed> ]");
});

cpython(
  'test_close: close() throws while running; afterwards the object refuses use; start() twice throws',
  async () => {
    const [control, childControl] = Pipe<string>();
    const p = start('waitForMessage', [childControl]);
    assert.is(p.isAlive(), true);

    const running = throws(() => p.close(), ProcessError, 'close() of a running process');
    assert.match(running.message, /running/);
    const twice = throws(() => p.start(), ProcessError, 'start() twice');
    assert.match(twice.message, /twice/);
    assert.is(p.isAlive(), true, 'the failed calls did not stop it');

    for (const bad of [-1, NaN]) {
      const e = await rejects(p.join(bad), RangeError, `join(${bad})`);
      assert.match(e.message, /timeout/);
      assert.ok(e.message.includes(String(bad)), e.message);
    }
    await rejects(p.join('1' as unknown as number), TypeError, "join('1')");
    await rejects(p.join(null as unknown as number), TypeError, 'join(null)');

    control.send('go');
    await p.join();
    assert.is(p.isAlive(), false);
    assert.is(p.exitCode, 0);
    p.close();
    await rejects(p.join(), ProcessError, 'join() after close()');
    throws(() => p.terminate(), ProcessError, 'terminate() after close()');
    // As Python's is_alive() and exitcode (they returned false and the code).
    assert.is(throws(() => p.isAlive(), ProcessError, 'isAlive() after close()').code, 'ERR_PROCESS_CLOSED');
    assert.is(throws(() => p.exitCode, ProcessError, 'exitCode after close()').code, 'ERR_PROCESS_CLOSED');
    assert.is(throws(() => p.pid, ProcessError, 'pid after close() (Python: ValueError)').code, 'ERR_PROCESS_CLOSED');
    p.close(); // again: nothing to do, as in Python
    throws(() => p.start(), ProcessError, 'start() after close()');
    p.close(); // closing twice is fine
  },
);

cpython('the process ends when its target returns, even with a recv() still waiting', async () => {
  const [r, w] = Pipe<string>();
  const p = start('returnWithRecvPending', [w]);
  assert.is(await r.recv(), 'returning');
  await deadline(p.join(), 20_000, 'join() of a target that returned');
  assert.is(p.exitCode, 0);
  await rejects(r.recv(), EOFError, 'recv() after the worker ended');
});

cpython('join() before start() is a ProcessError', async () => {
  const p = make('reportSelf');
  const e = await rejects(p.join(), ProcessError, 'join() before start()');
  assert.match(e.message, /start/);
  assert.is(p.isAlive(), false);
});

cpython(
  'a process waits for its children that are not daemons before it exits, whether its target returned or threw',
  async () => {
    // The worker exited as its target ended, and Node stopped its workers with it: the child never finished.
    for (const fail of [false, true]) {
      // The parent that throws prints its traceback (the contract): captured, so that a passing run shows none.
      const { stderr } = await captureStderr(async () => {
        const cells = new Int32Array(new SharedArrayBuffer(16));
        const p = start('startChildAndReturn', [cells, fail]);
        const finished = p.join().then(() => Atomics.load(cells, 3));
        await eventually(
          () => Atomics.load(cells, 2) === 1 && Atomics.load(cells, 0) === 1,
          20_000,
          'the parent returned, its child running',
        );
        // The gate opens once the parent exited (it must not, before its child ends) or 300 ms later: time for a
        // parent that does not wait to exit first (with a slower exit this test passes anyway; it cannot fail).
        await Promise.race([finished, new Promise((resolve) => setTimeout(resolve, 300))]);
        Atomics.store(cells, 1, 1);
        Atomics.notify(cells, 1);
        assert.is(await deadline(finished, 20_000, 'the parent exiting'), 1, 'its child finished first');
        assert.is(p.exitCode, fail ? 1 : 0);
        if (fail) assert.is((p.error as Error).message, 'the parent failed');
      });
      if (fail) assert.match(stderr, /the parent failed/);
    }
  },
);

cpython(
  'a library error thrown by a target comes back as its class: a BufferTooShort with its code and data',
  async () => {
    const { result: p } = await captureStderr(async () => {
      const p = start('tooShort', [], { name: 'too-short' });
      await p.join();
      return p;
    });
    assert.is(p.exitCode, 1);
    assert.instance(p.error, BufferTooShort);
    assert.instance(p.error, ProcessError);
    const error = p.error as BufferTooShort;
    assert.is(error.code, 'BufferTooShort');
    assert.equal([...error.data], [1, 2, 3, 4, 5]);
    assert.match(error.message, /5 bytes/);
  },
);

cpython.run();

// ---------------------------------------------------------------------------------------------------------
const failures = suite('Process: failures to start are typed errors, never a hang');

failures('a target the module does not export: exitCode 1, error names the target and the module', async () => {
  const { result: p, stderr } = await captureStderr(async () => {
    const p = start('noSuchTask', [], { name: 'missing-target' });
    await p.join();
    return p;
  });
  assert.is(p.exitCode, 1);
  assert.instance(p.error, ProcessError);
  assert.match(p.error!.message, /noSuchTask/);
  assert.ok(p.error!.message.includes('process-tasks.ts'), p.error!.message);
  assert.ok(stderr.includes('missing-target'), stderr);
});

failures(
  'a target that cannot be found says how to fix it: exported under another name, not a function, missing',
  async () => {
    const {
      result: [renamed, notFunction, missing, inline],
    } = await captureStderr(async () => {
      // An arrow written in place is named "target" by JavaScript: not anonymous, so not refused at construction.
      const inPlace = track(new Process({ target: () => 1, module: tasks }));
      const ps = [make(aliasedTask), make('notAFunction'), make('noSuchTask'), inPlace];
      for (const p of ps) p.start();
      await Promise.all(ps.map((p) => p.join()));
      return ps;
    });
    for (const p of [renamed, notFunction, missing, inline]) {
      assert.is(p!.exitCode, 1);
      assert.instance(p!.error, ProcessError);
      assert.is((p!.error as ProcessError).code, 'ERR_TARGET_NOT_FOUND');
    }
    assert.match(renamed!.error!.message, /target "renamedTask" is not a function exported by .*process-tasks\.ts/);
    assert.match(renamed!.error!.message, /exported as 'aliasedTask'; pass target: 'aliasedTask'/);
    assert.match(notFunction!.error!.message, /its export "notAFunction" is 42 \(number\)/);
    assert.match(missing!.error!.message, /the functions it exports are .*reportSelf/);
    // Found by review: it said only that "target" is not exported, which a user cannot connect to the arrow.
    assert.match(inline!.error!.message, /a function written in place \(`target: \(\) => \.\.\.`\) is named "target"/);
    assert.match(inline!.error!.message, /export it from the module/);
  },
);

failures(
  'a bound function, an anonymous one or a class as target: a TypeError at construction that says what to pass',
  () => {
    const bound = throws(
      () => new Process({ target: reportSelf.bind(null), module: tasks, args: [] as never }),
      TypeError,
      'a bound target',
    );
    assert.match(bound.message, /bound function \(bound reportSelf\)/);
    assert.match(bound.message, /target: reportSelf/);
    assert.match(bound.message, /options\.args/);
    const anonymous = throws(
      () => new Process({ target: [() => {}][0]!, module: tasks }),
      TypeError,
      'an anonymous target',
    );
    assert.match(anonymous.message, /anonymous/);
    assert.match(anonymous.message, /export a named function/);
    class Job {}
    const klass = throws(
      () => new Process({ target: Job as unknown as () => void, module: tasks }),
      TypeError,
      'a class as target',
    );
    assert.match(klass.message, /class \(Job\)/);
  },
);

failures('a module that does not exist: start() throws naming both, and nothing starts', () => {
  const [, w] = Pipe<string>();
  const p = track(
    new Process({ target: 'anything', module: new URL('./fixtures/no-such-module.ts', import.meta.url), args: [w] }),
  );
  const e = throws(() => p.start(), ProcessError, 'start() of a missing module');
  assert.match(e.message, /anything/);
  assert.match(e.message, /no-such-module\.ts/);
  assert.is(p.isAlive(), false);
  assert.is(p.pid, undefined);
  assert.is(w.closed, false, 'the Connection in args was not moved');
});

failures(
  'a module that throws while loading, or never finishes: exitCode 1, error names the target, the module and the cause',
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mpthreads-broken-'));
    try {
      const module = join(dir, 'broken.mjs');
      await writeFile(module, "throw new Error('broken at import');\nexport function task() {}\n");
      const { result: p } = await captureStderr(async () => {
        const p = track(new Process({ target: 'task', module }));
        p.start();
        await p.join();
        return p;
      });
      assert.is(p.exitCode, 1);
      assert.instance(p.error, Error);
      assert.match(p.error!.message, /task/);
      assert.match(p.error!.message, /broken\.mjs/);
      assert.match(p.error!.message, /broken at import/);

      // A top-level await that can never settle: the thread ended with exit code 13 and no error (review).
      const stuck = join(dir, 'stuck.mjs');
      await writeFile(stuck, 'await new Promise(() => {});\nexport function task() {}\n');
      const { result: q } = await captureStderr(async () => {
        const q = track(new Process({ target: 'task', module: stuck }));
        q.start();
        await q.join();
        return q;
      });
      assert.is(q.exitCode, 1);
      assert.match(q.error?.message ?? '', /stuck\.mjs.*never settle/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);

failures('args that cannot be copied: start() throws DataCloneError and moves nothing', async () => {
  const [r, w] = Pipe<unknown>();
  const p = make('reportSelf', [w, () => 'not cloneable']);
  const e = throws(() => p.start(), DOMException, 'start() with a function in args');
  assert.is(e.name, 'DataCloneError');
  assert.is(p.isAlive(), false);
  assert.is(w.closed, false, 'the Connection in args stays here');
  w.send('still usable');
  assert.is(await r.recv(), 'still usable');
});

failures('a worker that runs out of heap (resourceLimits) is reported, and its pipe ends at EOF', async () => {
  const [r, w] = Pipe<string>(false);
  const { result: p, stderr } = await captureStderr(async () => {
    const p = start('exhaustHeap', [w], { name: 'heap-hog', resourceLimits: { maxOldGenerationSizeMb: 32 } });
    assert.is(await r.recv(), 'allocating');
    await deadline(p.join(), 30_000, 'join() of the worker out of heap');
    return p;
  });
  assert.ok(p.exitCode !== null && p.exitCode !== 0, `exitCode ${p.exitCode}`);
  assert.instance(p.error, Error);
  assert.match(p.error!.message, /memory/);
  assert.ok(stderr.includes('heap-hog'), stderr);
  await rejects(r.recv(), EOFError, 'recv() from the worker that died');
});

failures.run();

// ---------------------------------------------------------------------------------------------------------
failures(
  "a worker message of an unknown kind is a warning naming a bug, not a crash; the user's own messages are left alone",
  async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const [conn, child] = Pipe<string>();
      const p = track(new Process({ target: 'postBogusProtocolMessage', module: tasks, args: [child] }));
      p.start();
      assert.is(await conn.recv(), 'posted');
      await p.join();
      assert.is(p.exitCode, 0);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
      const bugs = warnings.filter((w) => w.name === 'InternalError');
      assert.is(bugs.length, 1, warnings.map(String).join('; '));
      assert.match(bugs[0]!.message, /bug in mpthreads: process: unknown message kind "no such kind"/);
    } finally {
      process.off('warning', onWarning);
    }
  },
);

const lifetime = suite('Process: program lifetime');

lifetime(
  'a program that starts workers and never closes its pipes exits by itself',
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mpthreads-exit-'));
    try {
      const program = join(dir, 'never-closes.mts');
      const lib = pathToFileURL(join(root, 'lib', 'index.ts')).href;
      await writeFile(
        program,
        `
import { Process, Pipe, isMainThread, type Connection } from ${JSON.stringify(lib)};

export async function worker(conn: Connection<string>, spare: Connection<string>) {
  conn.send('hello');
  conn.send(\`got \${await conn.recv()}\`);
  // returns without closing conn or spare
}

export async function daemonWorker(conn: Connection<string>) {
  conn.send('daemon up');
  await conn.recv(); // waits forever: a daemon must not keep the program alive
}

if (isMainThread) {
  const [a, b] = Pipe<string>();
  const [unused, spare] = Pipe<string>();
  const [idle, idlePeer] = Pipe<string>();
  const [d, daemonEnd] = Pipe<string>();
  const p = new Process({ target: worker, module: import.meta.url, args: [b, spare] });
  const daemon = new Process({ target: daemonWorker, module: import.meta.url, args: [daemonEnd], daemon: true });
  p.start();
  daemon.start();
  console.log(await a.recv()); // a recv() that waits: it listens, then must stop keeping the program alive
  a.send('go');
  console.log(await a.recv());
  console.log(await d.recv());
  console.log(await idle.poll(20)); // a poll() that times out
  console.log(await idle.recv({ timeout: 20 }).catch((e: Error) => e.name)); // a recv() that times out
  const controller = new AbortController();
  const aborted = idle.recv({ signal: controller.signal }).catch(() => 'aborted');
  controller.abort();
  console.log(await aborted);
  await p.join();
  console.log('exitCode', p.exitCode, 'daemon alive', daemon.isAlive(), unused.closed, idlePeer.closed);
}
`,
      );
      const { code, signal, stdout, stderr } = await run('npx', ['tsx', program], { cwd: root, ms: 45_000 });
      assert.is(signal, null, stderr);
      assert.is(code, 0, stderr);
      assert.equal(stdout.trim().split('\n'), [
        'hello',
        'got go',
        'daemon up',
        'false',
        'TimeoutError',
        'aborted',
        'exitCode 0 daemon alive true false false',
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
  60_000,
);

lifetime('two joins of a daemon at once: the longer one keeps the program alive after the shorter ended', async () => {
  const fixture = fileURLToPath(new URL('./fixtures/daemon-joins.ts', import.meta.url));
  const { code, stdout, stderr } = await run(process.execPath, ['--import', 'tsx', fixture], { cwd: root, ms: 30_000 });
  assert.is(code, 0, `exit code ${code} (13: the second join never resolved)\n${stderr}`);
  assert.equal(JSON.parse(stdout), { exitCode: 0 });
});

lifetime(
  'a module that starts processes at its top level without `if (isMainThread)` ends by itself, naming the guard',
  async () => {
    // Before start() refused, each worker ran that top level again: 367 threads and 2.6 GB in 10 s, no output.
    // The fixture caps the cascade at three levels, and `run` kills the whole program at its deadline.
    const fixture = fileURLToPath(new URL('./fixtures/unguarded-start.ts', import.meta.url));
    const { code, signal, stdout, stderr } = await run(process.execPath, ['--import', 'tsx', fixture], {
      cwd: root,
      ms: 30_000,
    });
    assert.is(signal, null, stderr);
    assert.is(code, 0, stderr);
    assert.not.match(stderr, /runaway/, 'a worker of a worker ran the top level');
    const out = JSON.parse(stdout) as {
      exitCodes: number[];
      errors: string[];
      codes: string[];
      threadsStarted: number;
    };
    assert.equal(out.exitCodes, [1, 1], 'each worker failed to load its module');
    assert.equal(out.codes, ['ERR_START_WHILE_IMPORTING', 'ERR_START_WHILE_IMPORTING'], 'the code says why');
    for (const message of out.errors) {
      assert.match(
        message,
        /cannot start process "Process-\d+:1" while this worker is still importing its task module/,
      );
      assert.ok(message.includes('if (isMainThread)'), message);
      assert.match(message, /__name__ == '__main__'/);
      assert.match(message, /unguarded-start\.ts/);
    }
    assert.ok(stderr.includes('if (isMainThread)'), `the error is printed:\n${stderr}`);
    // Two workers (and a spare and tsx's loader threads, were the module not compiled): 4 here; the cascade, 44.
    assert.ok(out.threadsStarted <= 12, `${out.threadsStarted} threads started`);
  },
  45_000,
);

lifetime.run();
