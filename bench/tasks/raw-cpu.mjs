// The raw-2/cpu/1ms baseline's worker: a plain Worker that, for each { from, to } it is sent, runs `cpu(i)`
// for i in [from, to) in a loop and posts the sum of the results. Two of them, each given half the tasks, are
// the most two threads do on this machine, with no pool in between.
import { parentPort } from 'node:worker_threads';
import { cpu } from './pool-work.mjs';

parentPort?.on('message', (/** @type {{ from: number, to: number }} */ { from, to }) => {
  let sum = 0;
  for (let i = from; i < to; i++) sum += cpu(i);
  parentPort?.postMessage(sum);
});
