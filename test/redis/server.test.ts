// The redis-server harness itself (test/_support/redis-server.ts): the Redis queue's tests trust it to give a
// fresh, reachable server that can crash and come back with its data, and to leave nothing behind.
// Without redis-server on PATH this file prints the skip note once and registers no tests.
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import * as assert from 'uvu/assert';
import { suite } from '../_support/harness.ts';
import { type RedisServer, sendRaw, startRedis, whenRedis } from '../_support/redis-server.ts';

whenRedis(() => {
  const t = suite('redis-server harness');
  const servers: RedisServer[] = [];
  const start = async (options?: { appendonly?: boolean }) => {
    const server = await startRedis(options);
    servers.push(server);
    return server;
  };
  t.after.each(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
  });

  t('starts a server on its own port that answers a raw PING', async () => {
    const server = await start();
    assert.ok(server.port > 0 && server.port !== 6379, `port ${server.port}`);
    assert.is(server.url, `redis://127.0.0.1:${server.port}`);
    assert.ok(server.pid > 0);
    assert.is(await sendRaw(server.port, 'PING'), '+PONG\r\n');
  });

  t('two servers get different ports and dirs', async () => {
    const [a, b] = await Promise.all([start(), start()]);
    assert.is.not(a.port, b.port);
    assert.is.not(a.dir, b.dir);
    assert.is(await sendRaw(a.port, 'SET k a'), '+OK\r\n');
    assert.is(await sendRaw(b.port, 'GET k'), '$-1\r\n', 'b does not see a');
  });

  t('kill9 ends the process; restart brings a new one up on the same port and dir', async () => {
    const server = await start();
    const { port, dir, pid } = server;
    await server.kill9();
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the old process is gone');
    await sendRaw(port, 'PING', 500).then(
      () => assert.unreachable('nothing should answer on the port after kill9'),
      () => {},
    );
    await server.restart();
    assert.is(server.port, port);
    assert.is(server.dir, dir);
    assert.is.not(server.pid, pid);
    assert.is(await sendRaw(port, 'PING'), '+PONG\r\n');
  });

  t('restart of a running server shuts it down first', async () => {
    const server = await start();
    const pid = server.pid;
    await server.restart();
    assert.is.not(server.pid, pid);
    assert.throws(() => process.kill(pid, 0), /ESRCH/);
    assert.is(await sendRaw(server.port, 'PING'), '+PONG\r\n');
  });

  t('appendonly: the AOF is in dir, and an acknowledged write survives kill9 + restart', async () => {
    const server = await start({ appendonly: true });
    assert.is(await sendRaw(server.port, 'SET k v'), '+OK\r\n');
    const entries = await readdir(server.dir);
    assert.ok(
      entries.some((e) => e === 'appendonlydir' || e.startsWith('appendonly')),
      `no appendonly file or dir in ${server.dir}: ${entries.join(', ')}`,
    );
    await server.kill9();
    await server.restart();
    assert.is(await sendRaw(server.port, 'GET k'), '$1\r\nv\r\n');
  });

  t('without appendonly (and with no RDB saves) kill9 loses the data', async () => {
    const server = await start();
    assert.is(await sendRaw(server.port, 'SET k v'), '+OK\r\n');
    const entries = await readdir(server.dir);
    assert.not.ok(
      entries.some((e) => e.startsWith('appendonly') || e.endsWith('.rdb')),
      entries.join(', '),
    );
    await server.kill9();
    await server.restart();
    assert.is(await sendRaw(server.port, 'GET k'), '$-1\r\n');
  });

  t('stop ends the server, removes its dir, is idempotent; restart after it rejects', async () => {
    const server = await start({ appendonly: true });
    const { dir, pid, port } = server;
    await Promise.all([server.stop(), server.stop()]);
    await server.stop();
    assert.not.ok(existsSync(dir), `${dir} still exists`);
    assert.throws(() => process.kill(pid, 0), /ESRCH/);
    await sendRaw(port, 'PING', 500).then(
      () => assert.unreachable('nothing should answer on the port after stop'),
      () => {},
    );
    await server.restart().then(
      () => assert.unreachable('restart after stop should reject'),
      (error: Error) => assert.match(error.message, /stopped/),
    );
  });

  t('stop after kill9 still removes the dir', async () => {
    const server = await start();
    await server.kill9();
    await server.stop();
    assert.not.ok(existsSync(server.dir));
  });

  t.run();
});
