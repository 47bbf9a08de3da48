// The task of the fan-out case for piscina and tinypool: a default export, called once per task.

/** @param {number} x */
export default function increment(x) {
  return x + 1;
}
