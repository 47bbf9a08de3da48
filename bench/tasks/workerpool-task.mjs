// The tasks of the fan-out and Pool cases for workerpool: the worker registers its methods with
// workerpool.worker(). The Pool cases' functions come from pool-work.mjs, the code every implementation runs.
import workerpool from 'workerpool';
import { addOne, cpu } from './pool-work.mjs';

workerpool.worker({
  /** @param {number} x */
  increment: (x) => x + 1,
  addOne,
  cpu,
});
