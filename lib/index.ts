// The public surface of mpthreads: re-exports only.
export { Process, activeChildren, type ProcessOptions, type ProcessTarget } from './process.ts';
export { Connection, Pipe, type SendOptions } from './connection.ts';
export { currentProcess, parentProcess, isMainThread, type ProcessInfo } from './context.ts';
export {
  ProcessError,
  Empty,
  Full,
  EOFError,
  ClosedError,
  BufferTooShort,
  TimeoutError,
  InternalError,
  ErrorCode,
  WorkerLostError,
  BrokenBarrierError,
  ConnectionError,
} from './errors.ts';
export type { TransferItem, WaitOptions } from './options.ts';
export { Queue, type QueueOptions, type PutOptions } from './queue.ts';
export { registerClass, type ClassOptions } from './wire/classes.ts';
export { JoinableQueue } from './joinable-queue.ts';
export { SimpleQueue } from './simple-queue.ts';
export {
  Pool,
  type PoolOptions,
  type ApplyOptions,
  type ApplyAsyncOptions,
  type MapOptions,
  type MapAsyncOptions,
  type ImapOptions,
  type TaskFunction,
} from './pool/pool.ts';
export { AsyncResult } from './pool/async-result.ts';
export { Lock, RLock, type AcquireOptions } from './sync/lock.ts';
export { Semaphore, BoundedSemaphore } from './sync/semaphore.ts';
export { Event } from './sync/event.ts';
export { Condition } from './sync/condition.ts';
export { Barrier, type BarrierOptions } from './sync/barrier.ts';
export {
  Value,
  RawValue,
  SharedArray,
  RawArray,
  type LockOption,
  type Typecode,
  type TypedArrayOf,
  type ElementOf,
  type InputOf,
  type ValueConstructor,
  type RawValueConstructor,
  type SharedArrayConstructor,
  type RawArrayConstructor,
} from './sync/shared-memory.ts';
