// Worker threads do not inherit the tsx loader from --import; register it here,
// then run the TypeScript body named in workerData.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.body);
