// The messages between a Process (or the queue hub's starter) and its worker, besides user data: the closed
// vocabulary both sides import, workers/bootstrap.mjs as plain JavaScript and lib/protocol.ts with its types.
// Every message is an object whose PROTOCOL_TAG key holds its kind, so that a user's own parentPort messages
// are never mistaken for ours.

/** The key of workerData that carries the BootData, and the key of our messages that holds their kind. */
export const PROTOCOL_TAG = 'mpthreads';

export const Kind = Object.freeze({
  // parent -> worker
  /** The whole BootData, for a spare worker started on standby (lib/spare-worker.ts). */
  Boot: 'boot',
  /** What a worker started `pending` waits for: the compiled task module, or word to use tsx (lib/compile.ts). */
  Compiled: 'compiled',
  // worker -> parent
  /** The target threw, or the module could not be loaded; the worker then exits with code 1. */
  Error: 'error',
  /** What the worker leaves its parent to settle as it exits (`topic`, `data`: lib/context.ts noteToParent). */
  Note: 'note',
});

/**
 * Waits on `port` for the next message of `kind` (ignoring the user's own messages) and resolves with it.
 * @param {{ on(event: 'message', listener: (message: unknown) => void): unknown; off(event: 'message', listener: (message: unknown) => void): unknown } | null} port
 * @param {string} kind
 * @returns {Promise<Record<string, unknown>>}
 */
export function nextMessage(port, kind) {
  return new Promise((resolve) => {
    /** @param {unknown} message */
    const listener = (message) => {
      if (
        typeof message !== 'object' ||
        message === null ||
        /** @type {Record<string, unknown>} */ (message)[PROTOCOL_TAG] !== kind
      )
        return;
      port?.off('message', listener);
      resolve(/** @type {Record<string, unknown>} */ (message));
    };
    port?.on('message', listener);
  });
}
