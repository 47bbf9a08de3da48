// The start case's TypeScript task module, run under tsx by bench/start-ts.ts: it sends one message as
// soon as its target runs.
import { currentProcess, type Connection } from '../../lib/index.ts';

export function startTask(conn: Connection<string>): void {
  conn.send(`up ${currentProcess().pid}`);
  conn.close();
}
