/** The attach endpoint's worker thread: the socket server, answering even while the main thread is blocked. */
import { parentPort, workerData } from 'node:worker_threads';
import { AttachServer } from './attach/server.js';
import type { AttachThreadData } from './attach/endpoint.js';

new AttachServer(workerData as AttachThreadData, (note) => parentPort?.postMessage({ note })).listen();
