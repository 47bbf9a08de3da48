// registerClass(): instances of a registered class arrive as instances in another thread, through Process args,
// a Pipe and a Queue, as pickle rebuilds a class both sides import. Found by an outside check: every class
// instance arrived as a plain object, its methods gone, and nothing said so.
import * as assert from 'uvu/assert';
import { Pipe, Process, Queue, registerClass } from '../../lib/index.ts';
import { Loose, Point } from '../fixtures/classes.ts';
import { suite, track } from '../_support/harness.ts';

const t = suite('registerClass: instances arrive as instances');

t(
  'a registered class survives Process args, a Pipe and a Queue, both ways; an unregistered one is plain data',
  async () => {
    const [conn, childConn] = Pipe<unknown>();
    const q = new Queue<unknown>();
    const p = track(
      new Process({
        target: 'checkPoints',
        module: new URL('../fixtures/classes.ts', import.meta.url),
        args: [new Point(3, 4), childConn, q],
      }),
    );
    p.start();
    conn.send(new Point(3, 4));
    await q.put({ p: new Point(3, 4), loose: new Loose() });
    assert.equal(await conn.recv(), { arg: 5, pipe: 5, queue: 5, loose: true });
    const back = await conn.recv();
    assert.ok(back instanceof Point && back.norm() === 10, 'a Point sent back by the worker');
    const pair = (await q.get()) as Point[];
    assert.ok(pair[0] instanceof Point && pair[0].norm() === 13);
    assert.ok(pair[0] === pair[1], 'one instance put twice in an item is one instance');
    await p.join();
    assert.is(p.exitCode, 0, String(p.error));
    q.close();
  },
);

// Found (issue 10, item 12): nothing checked the warning a receiver gives for a class only the sender registered.
class OnlyInMain {
  constructor(
    public n = 7,
    public label = 'x',
  ) {}
}
registerClass(OnlyInMain);

t(
  'an instance of a class only the sender registered arrives as a plain object, with one warning naming it',
  async () => {
    const [conn, childConn] = Pipe<unknown>();
    const p = track(
      new Process({
        target: 'reportUnregistered',
        module: new URL('../fixtures/classes.ts', import.meta.url),
        args: [childConn],
      }),
    );
    p.start();
    conn.send(new OnlyInMain());
    conn.send(new OnlyInMain(8, 'y'));
    const report = (await conn.recv({ timeout: 20_000 })) as {
      plain: boolean[];
      fields: unknown[];
      warnings: { code: unknown; message: string }[];
    };
    assert.equal(report.plain, [true, true]);
    assert.equal(report.fields, [
      { n: 7, label: 'x' },
      { n: 8, label: 'y' },
    ]);
    assert.is(report.warnings.length, 1, 'one warning per class name');
    assert.is(report.warnings[0]!.code, 'MPTHREADS_UNREGISTERED_CLASS');
    assert.match(report.warnings[0]!.message, /class "OnlyInMain"/);
    assert.match(report.warnings[0]!.message, /registerClass\(\)/);
    await p.join();
    assert.is(p.exitCode, 0, String(p.error));
    conn.close();
  },
);

t.run();
