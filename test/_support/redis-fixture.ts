// What every Redis test file needs: a redis-server of its own for the suite (started before its first test,
// stopped after its last), the contexts its tests open (closed after each test, so no get or put is left
// waiting), and queue names no other test or run uses.
import type { Test } from 'uvu';
import { connect, type RedisContext } from '../../lib/redis/index.ts';
import { type RedisOptions, type RedisServer, startRedis } from './redis-server.ts';

export interface RedisFixture {
  /** The suite's server (set once the suite started). */
  server: RedisServer;
  /** A new context on the server, closed after the test. */
  open(): Promise<RedisContext>;
  /** A queue name unique to this run: `${what}-${pid}-${n}`. */
  name(what: string): string;
}

export function redisFixture(t: Test, options?: RedisOptions): RedisFixture {
  const contexts: RedisContext[] = [];
  let n = 0;
  const fixture: RedisFixture = {
    server: undefined as unknown as RedisServer,
    async open() {
      const c = await connect(fixture.server.url);
      contexts.push(c);
      return c;
    },
    name: (what) => `${what}-${process.pid}-${++n}`,
  };
  t.before(async () => {
    fixture.server = await startRedis(options);
  });
  t.after.each(async () => {
    await Promise.all(contexts.splice(0).map((c) => c.close()));
  });
  t.after(async () => {
    await fixture.server.stop();
  });
  return fixture;
}
