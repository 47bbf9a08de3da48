// The start case's raw baseline: a plain Worker that posts one message as soon as it runs, then ends.
import { parentPort } from 'node:worker_threads';

parentPort?.postMessage('up');
