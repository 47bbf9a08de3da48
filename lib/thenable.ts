// What `await` treats as a promise: an object with a then() method (a thenable), so that a task or an input
// step that returns one is waited for, as `await` would, and anything else is taken as it is.

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as PromiseLike<unknown>).then === 'function';
}
