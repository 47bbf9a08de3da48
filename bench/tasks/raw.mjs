// The raw baseline worker: plain JavaScript on bare MessagePorts, no library. One message per item
// (`batch: 0`), or arrays of `batch` items per message (raw-batched). The main thread drives it with the
// control protocol of control.mjs over the port in workerData.ctl, and hands it data ports in 'setup'.
//
// Roles (role.kind):
//   producer   items start..start+n-1 to ports[i % ports.length], then STOP on every port
//   consumer   receives from every port until each has sent STOP; reports count and checksum
//   pinger     n round trips of an int on port, each timed; then STOP
//   ponger     echoes every int on port until STOP
//   fanout     answers every task x (or array of tasks) on port with x + 1, until STOP
import { workerData } from 'node:worker_threads';
import { Mailbox, STOP, errorReply } from './control.mjs';
import { checker, isTransfer, maker, roundTripStats } from './payloads.mjs';

/** @typedef {import('node:worker_threads').MessagePort} MessagePort */

const ctl = new Mailbox(workerData.ctl);
/** @type {Record<string, any> | undefined} */
let role;

for (;;) {
  /** @type {import('./control.mjs').Command} */
  const msg = await ctl.next();
  try {
    if (msg.op === 'exit') break;
    if (msg.op === 'setup') {
      role = msg.role;
      ctl.post({ op: 'ready' });
    } else if (msg.op === 'teardown') {
      for (const port of /** @type {MessagePort[]} */ (role?.ports ?? [])) port.close();
      role = undefined;
      ctl.post({ op: 'ready' });
    } else if (msg.op === 'run') {
      if (role === undefined) throw new Error('run before setup');
      ctl.post({ op: 'done', ...(await run(role, msg.n, msg.start)) });
    } else {
      throw new Error(`raw worker: unexpected command ${JSON.stringify(msg)}`);
    }
  } catch (error) {
    ctl.post(errorReply(error));
  }
}
ctl.close();

/**
 * One repetition of the role. Producers and pingers say 'ready' and wait for 'go'; the others say 'ready'
 * and start listening at once.
 * @param {Record<string, any>} r
 * @param {number} n
 * @param {number} start
 * @returns {Promise<{ count: number, checksum: number, stats?: import('./control.mjs').RoundTripStats }>}
 */
async function run(r, n, start) {
  /** @type {MessagePort[]} */
  const ports = r.ports;
  switch (r.kind) {
    case 'producer': {
      ctl.post({ op: 'ready' });
      await go();
      const make = maker(r.payload);
      const k = ports.length;
      if (r.batch > 0) {
        /** @type {unknown[][]} */
        const batches = ports.map(() => []);
        for (let i = start; i < start + n; i++) {
          const b = batches[i % k];
          b.push(make(i));
          if (b.length === r.batch) {
            ports[i % k].postMessage(b);
            batches[i % k] = [];
          }
        }
        batches.forEach((b, j) => {
          if (b.length > 0) ports[j].postMessage(b);
        });
      } else if (isTransfer(r.payload)) {
        for (let i = start; i < start + n; i++) {
          const v = /** @type {Uint8Array} */ (make(i));
          ports[i % k].postMessage(v, [/** @type {ArrayBuffer} */ (v.buffer)]);
        }
      } else {
        for (let i = start; i < start + n; i++) ports[i % k].postMessage(make(i));
      }
      for (const port of ports) port.postMessage(STOP);
      return { count: n, checksum: 0 };
    }
    case 'consumer': {
      ctl.post({ op: 'ready' });
      const check = checker(r.payload);
      const batched = r.batch > 0;
      return new Promise((resolve, reject) => {
        let count = 0,
          checksum = 0,
          stops = 0;
        /** @param {any} v */
        const onMessage = (v) => {
          try {
            if (v === STOP) {
              if (++stops === ports.length) {
                for (const port of ports) port.off('message', onMessage);
                resolve({ count, checksum });
              }
            } else if (batched) {
              for (let j = 0; j < v.length; j++) checksum += check(v[j]);
              count += v.length;
            } else {
              checksum += check(v);
              count++;
            }
          } catch (error) {
            for (const port of ports) port.off('message', onMessage);
            reject(error);
          }
        };
        for (const port of ports) port.on('message', onMessage);
      });
    }
    case 'pinger': {
      ctl.post({ op: 'ready' });
      await go();
      const port = ports[0];
      const lat = new Float64Array(n);
      return new Promise((resolve, reject) => {
        let i = 0;
        const t0 = performance.now();
        let sentAt = t0;
        /** @param {number} v */
        const onMessage = (v) => {
          const now = performance.now();
          if (v !== i) {
            port.off('message', onMessage);
            reject(new Error(`round trip ${i}: got ${v}`));
            return;
          }
          lat[i] = now - sentAt;
          if (++i < n) {
            sentAt = performance.now();
            port.postMessage(i);
          } else {
            port.off('message', onMessage);
            const stats = roundTripStats(lat, now - t0);
            port.postMessage(STOP);
            resolve({ count: n, checksum: 0, stats });
          }
        };
        port.on('message', onMessage);
        sentAt = performance.now();
        port.postMessage(0);
      });
    }
    case 'ponger':
    case 'fanout': {
      ctl.post({ op: 'ready' });
      const port = ports[0];
      const fanout = r.kind === 'fanout';
      return new Promise((resolve) => {
        let count = 0;
        /** @param {any} v */
        const onMessage = (v) => {
          if (v === STOP) {
            port.off('message', onMessage);
            resolve({ count, checksum: 0 });
            return;
          }
          if (!fanout) {
            port.postMessage(v);
            count++;
            return;
          }
          if (Array.isArray(v)) {
            const out = new Array(v.length);
            for (let j = 0; j < v.length; j++) out[j] = v[j] + 1;
            port.postMessage(out);
            count += v.length;
          } else {
            port.postMessage(v + 1);
            count++;
          }
        };
        port.on('message', onMessage);
      });
    }
    default:
      throw new Error(`raw worker: unknown role ${r.kind}`);
  }
}

async function go() {
  const msg = await ctl.next();
  if (msg.op !== 'go') throw new Error(`expected go, got ${JSON.stringify(msg)}`);
}
