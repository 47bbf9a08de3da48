// The seed program, ported: process A sends a random integer from 1 to 10 through a Pipe, process B prints
// it; each prints its PID (here the worker's threadId). Python original: multiprocessing_pipe.py.
import { Process, Pipe, currentProcess, isMainThread, type Connection } from '../lib/index.ts';

export function producerTask(conn: Connection<number>) {
  const value = 1 + Math.floor(Math.random() * 10);
  conn.send(value);
  console.log(`Value [${value}] send by PID [${currentProcess().pid}]`);
  conn.close();
}

export async function consumerTask(conn: Connection<number>) {
  console.log(`Value [${await conn.recv()}] received by PID [${currentProcess().pid}]`);
}

if (isMainThread) {
  const [producerConn, consumerConn] = Pipe<number>();
  const consumer = new Process({ target: consumerTask, module: import.meta.url, args: [consumerConn] });
  const producer = new Process({ target: producerTask, module: import.meta.url, args: [producerConn] });

  consumer.start();
  producer.start();

  await consumer.join();
  await producer.join();
}
