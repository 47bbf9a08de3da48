// A history of queue operations, recorded during a run and checked offline (no library import: pure data).
//
// Every thread that puts or gets records events in its own HistoryLog: what kind, which item (producer id and
// that producer's sequence number), and when. "When" is a number on one clock shared by every thread: a ticket
// from a SharedArrayBuffer counter taken with Atomics.add (sequentially consistent, so it orders events along
// happens-before), or a wall clock (performance.timeOrigin + performance.now()) with a slack for skew between
// threads. A put records its ticket before it calls put(); a get records its ticket after get() returned.
//
// checkHistory() then answers, for the whole run:
//   lost        items whose put had to be delivered (PUT) and that no get returned;
//   duplicated  items returned by more than one get;
//   unexpected  gets of an item nobody put, or whose content failed its integrity check (GET_CORRUPT);
//   reordered   a consumer got two items of one producer in the opposite order of their puts (FIFO per
//               producer, checked per consumer: with a single consumer it is the whole contract);
//   early       a get returned an item before the put of that item began;
//   gaps        (option `prefix`) a producer's delivered items are not a gapless prefix of its puts — what a
//               producer terminated mid-stream may leave, and nothing else;
//   invalid     the history itself is malformed (the same item put twice).
// A put whose producer was terminated before the put was acknowledged is PUT_MAYBE: it may be lost, but if it
// arrives it arrives once, in order.

export const PUT = 1;
export const PUT_MAYBE = 2;
export const GET = 3;
export const GET_CORRUPT = 4;
export type Kind = typeof PUT | typeof PUT_MAYBE | typeof GET | typeof GET_CORRUPT;

export interface HistoryEvent {
  kind: Kind;
  /** The thread (agent) that recorded the event. */
  who: number;
  producer: number;
  seq: number;
  at: number;
}

/** The transferable form of a log: four column buffers. */
export interface HistoryWire {
  who: number;
  n: number;
  kind: ArrayBuffer;
  producer: ArrayBuffer;
  seq: ArrayBuffer;
  at: ArrayBuffer;
}

/** A growable, columnar event log for one thread; cheap to record into and to transfer between threads. */
export class HistoryLog {
  readonly who: number;
  n = 0;
  #kind: Uint8Array;
  #producer: Int32Array;
  #seq: Int32Array;
  #at: Float64Array;

  constructor(who: number, capacity = 1024) {
    this.who = who;
    this.#kind = new Uint8Array(capacity);
    this.#producer = new Int32Array(capacity);
    this.#seq = new Int32Array(capacity);
    this.#at = new Float64Array(capacity);
  }

  record(kind: Kind, producer: number, seq: number, at: number): void {
    if (this.n === this.#kind.length) this.#grow();
    const i = this.n++;
    this.#kind[i] = kind;
    this.#producer[i] = producer;
    this.#seq[i] = seq;
    this.#at[i] = at;
  }

  put(producer: number, seq: number, at: number): void {
    this.record(PUT, producer, seq, at);
  }

  get(producer: number, seq: number, at: number, intact = true): void {
    this.record(intact ? GET : GET_CORRUPT, producer, seq, at);
  }

  /** Marks the puts of `producer` with `seq >= from` as PUT_MAYBE (not acknowledged before a fault). */
  unacknowledged(producer: number, from: number): void {
    for (let i = 0; i < this.n; i++) {
      if (this.#kind[i] === PUT && this.#producer[i] === producer && this.#seq[i]! >= from) this.#kind[i] = PUT_MAYBE;
    }
  }

  event(i: number): HistoryEvent {
    return {
      kind: this.#kind[i] as Kind,
      who: this.who,
      producer: this.#producer[i]!,
      seq: this.#seq[i]!,
      at: this.#at[i]!,
    };
  }

  *events(): IterableIterator<HistoryEvent> {
    for (let i = 0; i < this.n; i++) yield this.event(i);
  }

  /** Copies the columns out (trimmed); pass `transferList(wire)` to move them. */
  toWire(): HistoryWire {
    return {
      who: this.who,
      n: this.n,
      kind: this.#kind.slice(0, this.n).buffer,
      producer: this.#producer.slice(0, this.n).buffer,
      seq: this.#seq.slice(0, this.n).buffer,
      at: this.#at.slice(0, this.n).buffer,
    };
  }

  static fromWire(wire: HistoryWire): HistoryLog {
    const log = new HistoryLog(wire.who, Math.max(1, wire.n));
    log.#kind.set(new Uint8Array(wire.kind));
    log.#producer.set(new Int32Array(wire.producer));
    log.#seq.set(new Int32Array(wire.seq));
    log.#at.set(new Float64Array(wire.at));
    log.n = wire.n;
    return log;
  }

  static fromEvents(who: number, events: Iterable<Omit<HistoryEvent, 'who'>>): HistoryLog {
    const log = new HistoryLog(who);
    for (const e of events) log.record(e.kind, e.producer, e.seq, e.at);
    return log;
  }

  #grow(): void {
    const capacity = this.#kind.length * 2;
    const kind = new Uint8Array(capacity);
    kind.set(this.#kind);
    this.#kind = kind;
    const producer = new Int32Array(capacity);
    producer.set(this.#producer);
    this.#producer = producer;
    const seq = new Int32Array(capacity);
    seq.set(this.#seq);
    this.#seq = seq;
    const at = new Float64Array(capacity);
    at.set(this.#at);
    this.#at = at;
  }
}

export function transferList(wire: HistoryWire): ArrayBuffer[] {
  return [wire.kind, wire.producer, wire.seq, wire.at];
}

export interface CheckOptions {
  /** Check FIFO per producer within each consumer's gets. @default true */
  fifo?: boolean;
  /** Check that each producer's delivered items are a gapless prefix of its puts. @default false */
  prefix?: boolean;
  /** How far a get's clock may read before its put's (wall clocks of different threads). @default 0 */
  slack?: number;
}

export interface ItemRef {
  producer: number;
  seq: number;
}

export interface HistoryReport {
  ok: boolean;
  puts: number;
  /** Puts that had to be delivered (PUT, not PUT_MAYBE). */
  mustDeliver: number;
  gets: number;
  /** Distinct items delivered. */
  delivered: number;
  lost: ItemRef[];
  /** PUT_MAYBE items that were not delivered (allowed; reported for the record). */
  maybeLost: number;
  duplicated: (ItemRef & { times: number; by: number[] })[];
  unexpected: (ItemRef & { who: number; corrupt: boolean })[];
  reordered: { who: number; producer: number; previous: number; seq: number }[];
  early: (ItemRef & { putAt: number; getAt: number; who: number })[];
  gaps: { producer: number; missing: number; firstMissing: number; lastDelivered: number }[];
  invalid: string[];
  /** Items delivered per consumer (who). */
  perConsumer: Map<number, number>;
}

const key = (producer: number, seq: number) => producer * 2 ** 32 + (seq >>> 0);

interface PutInfo {
  producer: number;
  seq: number;
  at: number;
  must: boolean;
  rank: number;
  got: number;
  by: number[];
}

/** Checks a run's logs (one per thread; the order of logs does not matter). */
export function checkHistory(logs: Iterable<HistoryLog>, options: CheckOptions = {}): HistoryReport {
  const fifo = options.fifo ?? true;
  const slack = options.slack ?? 0;
  const report: HistoryReport = {
    ok: false,
    puts: 0,
    mustDeliver: 0,
    gets: 0,
    delivered: 0,
    lost: [],
    maybeLost: 0,
    duplicated: [],
    unexpected: [],
    reordered: [],
    early: [],
    gaps: [],
    invalid: [],
    perConsumer: new Map(),
  };
  const puts = new Map<number, PutInfo>();
  const byProducer = new Map<number, PutInfo[]>();
  const gets: HistoryEvent[] = [];
  for (const log of logs) {
    for (let i = 0; i < log.n; i++) {
      const e = log.event(i);
      if (e.kind === PUT || e.kind === PUT_MAYBE) {
        const k = key(e.producer, e.seq);
        if (puts.has(k)) {
          report.invalid.push(`item ${e.producer}:${e.seq} was put twice`);
          continue;
        }
        const info: PutInfo = {
          producer: e.producer,
          seq: e.seq,
          at: e.at,
          must: e.kind === PUT,
          rank: 0,
          got: 0,
          by: [],
        };
        puts.set(k, info);
        let list = byProducer.get(e.producer);
        if (list === undefined) byProducer.set(e.producer, (list = []));
        list.push(info);
        report.puts++;
        if (info.must) report.mustDeliver++;
      } else if (e.kind === GET || e.kind === GET_CORRUPT) {
        gets.push(e);
      } else {
        report.invalid.push(`unknown event kind ${e.kind as number}`);
      }
    }
  }
  // Put order per producer: by the clock, ties by seq.
  for (const list of byProducer.values()) {
    list.sort((a, b) => a.at - b.at || a.seq - b.seq);
    list.forEach((info, rank) => {
      info.rank = rank;
    });
  }
  // Gets, per consumer in the order each observed them.
  gets.sort((a, b) => a.who - b.who || a.at - b.at);
  const lastRank = new Map<string, { rank: number; seq: number }>();
  for (const g of gets) {
    report.gets++;
    const info = g.kind === GET ? puts.get(key(g.producer, g.seq)) : undefined;
    if (info === undefined) {
      report.unexpected.push({ producer: g.producer, seq: g.seq, who: g.who, corrupt: g.kind === GET_CORRUPT });
      continue;
    }
    info.got++;
    info.by.push(g.who);
    report.perConsumer.set(g.who, (report.perConsumer.get(g.who) ?? 0) + 1);
    if (g.at + slack < info.at)
      report.early.push({ producer: g.producer, seq: g.seq, putAt: info.at, getAt: g.at, who: g.who });
    if (fifo) {
      const lane = `${g.who}/${g.producer}`;
      const last = lastRank.get(lane);
      if (last !== undefined && info.rank < last.rank) {
        report.reordered.push({ who: g.who, producer: g.producer, previous: last.seq, seq: g.seq });
      }
      if (last === undefined || info.rank > last.rank) lastRank.set(lane, { rank: info.rank, seq: g.seq });
    }
  }
  for (const info of puts.values()) {
    if (info.got > 0) report.delivered++;
    if (info.got > 1) report.duplicated.push({ producer: info.producer, seq: info.seq, times: info.got, by: info.by });
    if (info.got === 0) {
      if (info.must) report.lost.push({ producer: info.producer, seq: info.seq });
      else report.maybeLost++;
    }
  }
  if (options.prefix === true) {
    for (const [producer, list] of byProducer) {
      let lastDelivered = -1;
      for (let r = list.length - 1; r >= 0; r--)
        if (list[r]!.got > 0) {
          lastDelivered = r;
          break;
        }
      let missing = 0;
      let firstMissing = -1;
      for (let r = 0; r < lastDelivered; r++) {
        if (list[r]!.got === 0) {
          missing++;
          if (firstMissing === -1) firstMissing = list[r]!.seq;
        }
      }
      if (missing > 0) report.gaps.push({ producer, missing, firstMissing, lastDelivered: list[lastDelivered]!.seq });
    }
  }
  report.lost.sort((a, b) => a.producer - b.producer || a.seq - b.seq);
  report.ok =
    report.lost.length === 0 &&
    report.duplicated.length === 0 &&
    report.unexpected.length === 0 &&
    report.reordered.length === 0 &&
    report.early.length === 0 &&
    report.gaps.length === 0 &&
    report.invalid.length === 0;
  return report;
}

/** A short, human-readable account of what went wrong (for assertion messages). */
export function describeReport(r: HistoryReport, limit = 5): string {
  const items = (list: ItemRef[]) =>
    list
      .slice(0, limit)
      .map((x) => `${x.producer}:${x.seq}`)
      .join(', ') + (list.length > limit ? ', ...' : '');
  const lines = [
    `${r.puts} puts (${r.mustDeliver} to deliver), ${r.gets} gets, ${r.delivered} distinct items delivered`,
  ];
  if (r.lost.length > 0) lines.push(`lost ${r.lost.length}: ${items(r.lost)}`);
  if (r.maybeLost > 0) lines.push(`not delivered (unacknowledged, allowed) ${r.maybeLost}`);
  if (r.duplicated.length > 0)
    lines.push(
      `duplicated ${r.duplicated.length}: ${r.duplicated
        .slice(0, limit)
        .map((d) => `${d.producer}:${d.seq} x${d.times} by ${d.by.join('/')}`)
        .join(', ')}`,
    );
  if (r.unexpected.length > 0)
    lines.push(
      `unexpected ${r.unexpected.length}: ${r.unexpected
        .slice(0, limit)
        .map((u) => `${u.producer}:${u.seq}${u.corrupt ? ' (corrupt)' : ''} by ${u.who}`)
        .join(', ')}`,
    );
  if (r.reordered.length > 0)
    lines.push(
      `reordered ${r.reordered.length}: ${r.reordered
        .slice(0, limit)
        .map((o) => `consumer ${o.who} got ${o.producer}:${o.seq} after ${o.producer}:${o.previous}`)
        .join(', ')}`,
    );
  if (r.early.length > 0)
    lines.push(
      `got before put ${r.early.length}: ${r.early
        .slice(0, limit)
        .map((e) => `${e.producer}:${e.seq} put@${e.putAt} got@${e.getAt}`)
        .join(', ')}`,
    );
  if (r.gaps.length > 0)
    lines.push(
      `gaps ${r.gaps.length}: ${r.gaps
        .slice(0, limit)
        .map(
          (g) =>
            `producer ${g.producer} misses ${g.missing} from ${g.firstMissing} (delivered up to ${g.lastDelivered})`,
        )
        .join(', ')}`,
    );
  if (r.invalid.length > 0) lines.push(`invalid history: ${r.invalid.slice(0, limit).join('; ')}`);
  return lines.join('\n');
}

/** A clock over shared memory: tickets from one counter, usable from every thread that has the buffer. */
export class TicketClock {
  readonly buffer: SharedArrayBuffer;
  readonly #cells: Int32Array;
  constructor(buffer = new SharedArrayBuffer(8)) {
    this.buffer = buffer;
    this.#cells = new Int32Array(buffer);
  }
  /** The next ticket: strictly greater than every ticket taken before (in happens-before order). */
  tick(): number {
    return Atomics.add(this.#cells, 0, 1) + 1;
  }
}

/** The integrity check stored in each item: a cheap hash of (producer, seq). */
export function itemCheck(producer: number, seq: number): number {
  return (Math.imul(producer ^ 0x5bd1e995, 0x27d4eb2d) ^ Math.imul(seq + 1, 0x165667b1)) | 0;
}
