// The messages between a Pool (scheduler.ts, in the thread that made the pool) and each of its workers
// (worker.ts), on one MessageChannel per worker. Tasks travel in chunks: the args of many tasks of one
// function, encoded as one batch (lib/wire/), and their results come back the same way, in parts.
//
//   | step     | pool                                              | worker                                       |
//   |----------|---------------------------------------------------|----------------------------------------------|
//   | start    | starts a Process (entry 'pool') whose args carry  | imports the module, runs the initializer:    |
//   |          | this channel, the initializer and its args        | Ready, or InitFailed and exit               |
//   | run      | Run{id, fn, star, batch}: one chunk               | runs its tasks one at a time, in order;      |
//   |          |                                                   | before each, writes (id, index) in `progress`|
//   | results  |                                                   | Results{id, from, batch, failures, done}:    |
//   |          |                                                   | every few ms of work, and at the chunk's end |
//   | stop     | Stop (maxtasksperchild reached, or the pool done) | finishes what it has, exits 0                |
//   | death    | the Process exits: reads `progress` to know which |                                              |
//   |          | task was running (WorkerLostError), and queues    |                                              |
//   |          | again the tasks it had not sent results for       |                                              |
import type { SerializedError } from '../errors.ts';
import type { Batch } from '../wire/format.ts';

export const PoolOp = {
  // pool -> worker
  Run: 'run',
  Stop: 'stop',
  // worker -> pool
  Ready: 'ready',
  InitFailed: 'initfailed',
  Results: 'results',
} as const;

/** A chunk: `batch` holds the tasks' arguments (an array of args per task; with `star` false, one arg each). */
export interface RunMessage {
  op: typeof PoolOp.Run;
  id: number;
  fn: string;
  star: boolean;
  batch: Batch;
}
export interface StopMessage {
  op: typeof PoolOp.Stop;
}
export type ToWorker = RunMessage | StopMessage;

export interface ReadyMessage {
  op: typeof PoolOp.Ready;
}
export interface InitFailedMessage {
  op: typeof PoolOp.InitFailed;
  error: SerializedError;
}
/**
 * Results of tasks [from, from + batch.n) of chunk `id`; `failures` pairs a task's position in the chunk with
 * its error (its slot in `batch` is undefined). `done`: the chunk is finished. `ms`: the time these tasks took.
 */
export interface ResultsMessage {
  op: typeof PoolOp.Results;
  id: number;
  from: number;
  batch: Batch;
  failures: [number, SerializedError][] | null;
  done: boolean;
  ms: number;
}
export type FromWorker = ReadyMessage | InitFailedMessage | ResultsMessage;

/** The cells of a worker's `progress` (an Int32Array over a SharedArrayBuffer the pool reads when it dies). */
export const kProgressChunk = 0;
export const kProgressIndex = 1;
/** 1 while a task runs, 0 between tasks (its results are in hand, or sent). */
export const kProgressRunning = 2;
export const kProgressCells = 3;
