// A bare Worker's way into a TypeScript module under tsx (FACTS.md: `new Worker('x.ts')` fails even under tsx):
// register tsx in this worker, then import `workerData.module`.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.module);
