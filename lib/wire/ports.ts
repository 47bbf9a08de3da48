// Ports closed from their other side while the message that moves them waited (in the queue hub, or in a
// pool's queue): Node refuses to move a closed port (DataCloneError), and a message that still holds one
// without moving it crashes the process. Such a message goes with a port whose other side is closed in each
// one's place, as it would have arrived had it been sent before the close: a Connection end made of it reads
// EOF, a raw port gets its 'close'.
import { MessageChannel, MessagePort } from 'node:worker_threads';
import type { Batch } from './format.ts';

/**
 * `port.postMessage(message, transfer)`, or, when a port in `transfer` was closed from its other side, the same
 * message with a fresh port in each closed one's place (`batch` is the one the message carries). Throws what
 * the post throws otherwise.
 */
export function postRepairingPorts(port: MessagePort, message: unknown, batch: Batch, transfer: unknown[]): void {
  try {
    port.postMessage(message, transfer as never[]);
  } catch (error) {
    const closing = replaceClosedPorts(batch, transfer);
    if (closing.length === 0) throw error;
    port.postMessage(message, transfer as never[]);
    for (const other of closing) other.close();
  }
}

/**
 * Puts a fresh port in the place of each port of `transfer` that can no longer be moved, there and wherever
 * the batch's carried objects hold it (a Connection's wire record holds its port); the others are moved to new
 * objects on the way, and put in their place too. Returns the other ends of the fresh ports, to close once
 * the message is posted (closed before, their ports could not be moved either): none when no port was closed.
 */
function replaceClosedPorts(batch: Batch, transfer: unknown[]): MessagePort[] {
  const closing: MessagePort[] = [];
  const replaced = new Map<MessagePort, MessagePort>();
  for (let i = 0; i < transfer.length; i++) {
    const port = transfer[i];
    if (!(port instanceof MessagePort)) continue;
    let replacement: MessagePort;
    try {
      replacement = structuredClone(port, { transfer: [port] });
    } catch {
      const channel = new MessageChannel();
      replacement = channel.port1;
      closing.push(channel.port2);
    }
    replaced.set(port, replacement);
    transfer[i] = replacement;
  }
  const seen = new Set<object>();
  if (replaced.size > 0)
    for (const carry of batch.carry ?? []) if (carry !== undefined) substitute(carry, replaced, seen);
  return closing;
}

/** Replaces, in place, the ports of `replaced` found in `value`'s arrays and plain objects, however deep. */
function substitute(value: unknown, replaced: Map<MessagePort, MessagePort>, seen: Set<object>): void {
  if (typeof value !== 'object' || value === null || seen.has(value)) return;
  seen.add(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (item instanceof MessagePort) value[i] = replaced.get(item) ?? item;
      else substitute(item, replaced, seen);
    }
  } else if (isPlainObject(value)) {
    for (const key of Object.keys(value)) {
      const item = value[key];
      if (item instanceof MessagePort) value[key] = replaced.get(item) ?? item;
      else substitute(item, replaced, seen);
    }
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
