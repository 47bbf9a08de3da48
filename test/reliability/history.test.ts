// Unit tests of the history checker (test/reliability/history.ts): it must pass every history a correct FIFO
// queue can produce, and catch each kind of fault when one is planted. Pure: no workers.
import fc from 'fast-check';
import * as assert from 'uvu/assert';
import {
  GET,
  GET_CORRUPT,
  HistoryLog,
  PUT,
  PUT_MAYBE,
  TicketClock,
  checkHistory,
  describeReport,
  itemCheck,
  transferList,
  type HistoryEvent,
} from './history.ts';
import { suite } from '../_support/harness.ts';

type Ev = Omit<HistoryEvent, 'who'> & { who: number };

function logsOf(events: Ev[]): HistoryLog[] {
  const byWho = new Map<number, Ev[]>();
  for (const e of events) {
    let list = byWho.get(e.who);
    if (list === undefined) byWho.set(e.who, (list = []));
    list.push(e);
  }
  return [...byWho].map(([who, list]) => HistoryLog.fromEvents(who, list));
}

/**
 * Simulates a correct FIFO queue driven by `steps`: producers put their next item, consumers take the head.
 * Returns the events, with a ticket clock. Producers are 100+p, consumers 200+c.
 */
function simulate(producers: number, consumers: number, steps: number[]): Ev[] {
  const clock = new TicketClock();
  const queue: { producer: number; seq: number }[] = [];
  const next = new Array<number>(producers).fill(0);
  const events: Ev[] = [];
  for (const step of steps) {
    if (step % 2 === 0 || queue.length === 0) {
      const p = (step >> 1) % producers;
      const seq = next[p]!++;
      events.push({ kind: PUT, who: 100 + p, producer: p, seq, at: clock.tick() });
      queue.push({ producer: p, seq });
    } else {
      const c = (step >> 1) % consumers;
      const item = queue.shift()!;
      events.push({ kind: GET, who: 200 + c, producer: item.producer, seq: item.seq, at: clock.tick() });
    }
  }
  for (const item of queue.splice(0))
    events.push({ kind: GET, who: 200, producer: item.producer, seq: item.seq, at: clock.tick() });
  return events;
}

const t = suite('history checker');

t('a correct single-consumer history passes, with counts', () => {
  const events = simulate(
    4,
    1,
    Array.from({ length: 400 }, (_, i) => (i * 7919) % 23),
  );
  const r = checkHistory(logsOf(events));
  assert.ok(r.ok, describeReport(r));
  assert.is(r.gets, r.puts);
  assert.is(r.delivered, r.puts);
  assert.is(r.lost.length, 0);
});

t('property: every history of a correct FIFO queue passes (any producers, consumers, interleaving)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 4 }),
      fc.array(fc.nat(1000), { maxLength: 300 }),
      (p, c, steps) => {
        const r = checkHistory(logsOf(simulate(p, c, steps)));
        return r.ok && r.delivered === r.puts;
      },
    ),
    { numRuns: 200 },
  );
});

// Each planted fault, and what it must be reported as.
const faults: [
  string,
  (events: Ev[], rnd: () => number) => boolean,
  (r: ReturnType<typeof checkHistory>) => boolean,
][] = [
  ['a lost item', (ev, rnd) => dropGet(ev, rnd), (r) => r.lost.length === 1],
  [
    'a duplicated item',
    (ev, rnd) => {
      const g = pick(ev, rnd, (e) => e.kind === GET);
      if (g === undefined) return false;
      ev.push({ ...g, at: g.at + 0.5 });
      return true;
    },
    (r) => r.duplicated.length === 1 && r.duplicated[0]!.times === 2,
  ],
  [
    'an unexpected item',
    (ev) => {
      ev.push({ kind: GET, who: 200, producer: 77, seq: 0, at: 1e9 });
      return true;
    },
    (r) => r.unexpected.length === 1 && !r.unexpected[0]!.corrupt,
  ],
  [
    'a corrupt item',
    (ev, rnd) => {
      const g = pick(ev, rnd, (e) => e.kind === GET);
      if (g === undefined) return false;
      g.kind = GET_CORRUPT;
      return true;
    },
    (r) => r.unexpected.length === 1 && r.unexpected[0]!.corrupt && r.lost.length === 1,
  ],
  ['two items of one producer swapped in one consumer', (ev, rnd) => swapGets(ev, rnd), (r) => r.reordered.length >= 1],
  [
    'a get before its put began',
    (ev, rnd) => {
      const g = pick(ev, rnd, (e) => e.kind === GET);
      if (g === undefined) return false;
      const put = ev.find((e) => e.kind === PUT && e.producer === g.producer && e.seq === g.seq)!;
      g.at = put.at - 0.5;
      return true;
    },
    (r) => r.early.length === 1,
  ],
  [
    'an item put twice',
    (ev, rnd) => {
      const p = pick(ev, rnd, (e) => e.kind === PUT);
      if (p === undefined) return false;
      ev.push({ ...p });
      return true;
    },
    (r) => r.invalid.length === 1,
  ],
];

function pick(events: Ev[], rnd: () => number, pred: (e: Ev) => boolean): Ev | undefined {
  const candidates = events.filter(pred);
  return candidates.length === 0 ? undefined : candidates[Math.floor(rnd() * candidates.length)];
}

function dropGet(events: Ev[], rnd: () => number): boolean {
  const g = pick(events, rnd, (e) => e.kind === GET);
  if (g === undefined) return false;
  events.splice(events.indexOf(g), 1);
  return true;
}

function swapGets(events: Ev[], rnd: () => number): boolean {
  // Two gets by the same consumer of the same producer: swap their times.
  const gets = events.filter((e) => e.kind === GET);
  const offset = Math.floor(rnd() * gets.length);
  for (let k = 0; k < gets.length; k++) {
    const a = gets[(k + offset) % gets.length]!;
    const b = gets.find((e) => e !== a && e.who === a.who && e.producer === a.producer && e.seq > a.seq);
    if (b !== undefined) {
      [a.at, b.at] = [b.at, a.at];
      // keep "no get before its put" true, so that only the order is wrong
      return events.find((e) => e.kind === PUT && e.producer === b.producer && e.seq === b.seq)!.at < a.at;
    }
  }
  return false;
}

for (const [name, plant, detected] of faults) {
  t(`property: ${name} is reported`, () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.nat(1000), { minLength: 4, maxLength: 120 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (p, c, steps, seed) => {
          const events = simulate(p, c, steps);
          let s = seed;
          const rnd = () => {
            s = (s * 9301 + 0.49297) % 1;
            return s;
          };
          fc.pre(plant(events, rnd));
          const r = checkHistory(logsOf(events));
          return !r.ok && detected(r);
        },
      ),
      { numRuns: 150 },
    );
  });
}

t('PUT_MAYBE items may be missing; if they arrive they count once; prefix finds gaps', () => {
  const clock = new TicketClock();
  const log = new HistoryLog(1);
  for (let s = 0; s < 10; s++) log.put(0, s, clock.tick());
  log.unacknowledged(0, 6); // 6..9 were not acknowledged
  const consumer = new HistoryLog(2);
  for (let s = 0; s < 8; s++) consumer.get(0, s, clock.tick());
  let r = checkHistory([log, consumer], { prefix: true });
  assert.ok(r.ok, describeReport(r));
  assert.is(r.maybeLost, 2);
  assert.is(r.mustDeliver, 6);

  const withGap = new HistoryLog(2);
  for (const s of [0, 1, 2, 3, 4, 5, 7]) withGap.get(0, s, clock.tick());
  r = checkHistory([log, withGap], { prefix: true });
  assert.not.ok(r.ok);
  assert.equal(r.gaps, [{ producer: 0, missing: 1, firstMissing: 6, lastDelivered: 7 }]);
  assert.is(r.lost.length, 0);
});

t('a reorder across consumers is not a per-consumer reorder; within one consumer it is', () => {
  const clock = new TicketClock();
  const prod = new HistoryLog(1);
  prod.put(0, 0, clock.tick());
  prod.put(0, 1, clock.tick());
  const a = new HistoryLog(2);
  const b = new HistoryLog(3);
  b.get(0, 1, clock.tick());
  a.get(0, 0, clock.tick());
  assert.ok(checkHistory([prod, a, b]).ok);
  const one = new HistoryLog(2);
  one.get(0, 1, clock.tick());
  one.get(0, 0, clock.tick());
  const r = checkHistory([prod, one]);
  assert.equal(r.reordered, [{ who: 2, producer: 0, previous: 1, seq: 0 }]);
  assert.match(describeReport(r), /reordered 1/);
});

t('wall-clock histories: slack tolerates skew up to the bound only', () => {
  const prod = HistoryLog.fromEvents(1, [{ kind: PUT, producer: 0, seq: 0, at: 1000.3 }]);
  const cons = HistoryLog.fromEvents(2, [{ kind: GET, producer: 0, seq: 0, at: 1000.1 }]);
  assert.is(checkHistory([prod, cons]).early.length, 1);
  assert.ok(checkHistory([prod, cons], { slack: 0.5 }).ok);
});

t('logs survive the wire (columns copied out, transferable, rebuilt equal) and grow past capacity', () => {
  const log = new HistoryLog(7, 2);
  for (let i = 0; i < 1000; i++) log.record(i % 2 === 0 ? PUT : PUT_MAYBE, i % 3, i, i * 1.5);
  const wire = log.toWire();
  assert.is(transferList(wire).length, 4);
  const copy = structuredClone(wire, { transfer: transferList(wire) });
  const back = HistoryLog.fromWire(copy);
  assert.is(back.who, 7);
  assert.is(back.n, 1000);
  assert.equal([...back.events()], [...log.events()]);
});

t('itemCheck tells items apart', () => {
  const seen = new Set<number>();
  for (let p = 0; p < 8; p++) for (let s = 0; s < 2000; s++) seen.add(itemCheck(p, s));
  assert.ok(seen.size > 15_990, `only ${seen.size} distinct checks`);
});

t.run();
