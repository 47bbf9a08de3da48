// The task of the fan-out case for workerpool: the worker registers its methods with workerpool.worker().
import workerpool from 'workerpool';

workerpool.worker({
  /** @param {number} x */
  increment: (x) => x + 1,
});
