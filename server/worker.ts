/**
 * Data-plane worker threads: with Redis behind the server and WORKERS above 1, POST /v1/decide
 * is served by that many threads, all listening on PORT (uWebSockets.js opens each listen socket
 * with SO_REUSEPORT, and the kernel spreads new connections across them), while the main thread
 * runs the control plane, health and metrics.
 *
 * Every worker is a `data` instance of its own (server/app.ts): its own Redis connections and
 * fleet-bus subscription, its own cache and compiled copy of the active rule set. The main thread
 * has stored the rule-set file before any worker starts; workers only load the active version.
 *
 * This file is both the main thread's side (`startWorkers`) and the worker's entry (the same
 * module, run with the worker data below).
 *
 * Messages, main thread to worker: `{type: 'metrics', id}`, `{type: 'drain', delayMs, timeoutMs}`.
 * Worker to main thread: `{type: 'ready', port}`, `{type: 'failed', message}`,
 * `{type: 'metrics', id, metrics}`, `{type: 'drained'}`.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import uWS from '@based/uws';
import { startServer } from './app.js';
import type { Config } from './config.js';
import { createLogger, type Logger } from './log.js';
import { type MetricJSON, unansweredWorker } from './metrics.js';

const KIND = 'mindshare-data-plane';

interface WorkerData {
  kind: typeof KIND;
  config: Config;
  /** 1..WORKERS */
  worker: number;
  /** Where to listen; 0: a free port (the first worker only). */
  port: number;
}

type ToWorker = { type: 'metrics'; id: number } | { type: 'drain'; delayMs: number; timeoutMs: number };
type FromWorker =
  | { type: 'ready'; port: number }
  | { type: 'failed'; message: string }
  | { type: 'metrics'; id: number; metrics: MetricJSON[] }
  | { type: 'drained' };

/** How long a drained worker may take to end, besides the drain itself: uWS closes idle keep-alive connections after about 10 s. */
const EXIT_GRACE_MS = 15_000;

export interface WorkerPool {
  /** The port every worker listens on. */
  readonly port: number;
  /** Workers serving now. */
  size(): number;
  /**
   * Every serving worker's metrics. One that does not answer within `timeoutMs` is reported only
   * by its event-loop delay, at least `timeoutMs` (left out entirely once the pool drains).
   */
  metrics(timeoutMs: number): Promise<MetricJSON[][]>;
  /**
   * Drains every worker (not ready already: the main thread says so): after `delayMs` each
   * closes its listen socket, waits for requests in flight up to `timeoutMs` and closes its
   * store connections; then each thread ends once its last connection is gone. Resolves when
   * all have ended (or the bound passed): how many ended.
   */
  drain(delayMs: number, timeoutMs: number): Promise<{ exited: number; total: number }>;
}

interface Slot {
  worker: Worker;
  n: number;
  ready: boolean;
  /** Drained (it no longer answers messages), not ended yet. */
  drained: boolean;
  exited: Promise<number>;
  done: boolean;
}

/**
 * Starts `count` data-plane workers. The first listens on `config.port` (0: a free port) and
 * reports the port; the others then listen on that same one. Rejects when a worker cannot start
 * (after ending those that did).
 */
export async function startWorkers(config: Config, count: number, logger: Logger): Promise<WorkerPool> {
  const slots = new Map<number, Slot>();
  let draining = false;
  let nextId = 0;
  const pending = new Map<number, (m: MetricJSON[]) => void>();

  const spawnWorker = (n: number, port: number): { slot: Slot; ready: Promise<number> } => {
    const data: WorkerData = { kind: KIND, config, worker: n, port };
    const worker = new Worker(new URL(import.meta.url), { workerData: data });
    let resolveReady: (port: number) => void = () => {};
    let rejectReady: (e: Error) => void = () => {};
    const ready = new Promise<number>((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    let resolveExit: (code: number) => void = () => {};
    const slot: Slot = {
      worker,
      n,
      ready: false,
      drained: false,
      done: false,
      exited: new Promise<number>((resolve) => {
        resolveExit = resolve;
      }),
    };
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'ready') {
        slot.ready = true;
        resolveReady(m.port);
      } else if (m.type === 'failed') {
        rejectReady(new Error(`data-plane worker ${n} could not start: ${m.message}`));
      } else if (m.type === 'metrics') {
        pending.get(m.id)?.(m.metrics);
      } else if (m.type === 'drained') {
        slot.drained = true;
      }
    });
    worker.on('error', (err) => {
      logger.error({ err, worker: n }, 'data-plane worker failed');
      rejectReady(err);
    });
    worker.on('exit', (code) => {
      slot.ready = false;
      slot.done = true;
      resolveExit(code);
      rejectReady(new Error(`data-plane worker ${n} ended (exit code ${code}) before it was ready`));
      if (slots.get(n) !== slot || draining) return;
      slots.delete(n);
      logger.error({ worker: n, code }, 'data-plane worker ended; starting it again');
      setTimeout(() => {
        if (draining) return;
        const again = spawnWorker(n, poolPort);
        slots.set(n, again.slot);
        again.ready.then(
          () => logger.info({ worker: n }, 'data-plane worker serving again'),
          (err: unknown) => logger.error({ err, worker: n }, 'data-plane worker could not start again'),
        );
      }, 1000).unref();
    });
    return { slot, ready };
  };

  const endAll = async (delayMs: number, timeoutMs: number): Promise<{ exited: number; total: number }> => {
    draining = true;
    const all = [...slots.values()];
    const message: ToWorker = { type: 'drain', delayMs, timeoutMs };
    for (const s of all) if (!s.done) s.worker.postMessage(message);
    const bound = delayMs + timeoutMs + EXIT_GRACE_MS;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, bound);
    });
    let exited = 0;
    await Promise.race([
      Promise.all(
        all.map((s) =>
          s.exited.then(() => {
            exited++;
          }),
        ),
      ),
      timeout,
    ]);
    clearTimeout(timer);
    if (exited < all.length) {
      logger.error(
        { exited, total: all.length, waitedMs: bound },
        'data-plane workers still running after the drain',
      );
    }
    return { exited, total: all.length };
  };

  // The first worker finds the port; the others join it.
  let poolPort = config.port;
  const first = spawnWorker(1, config.port);
  slots.set(1, first.slot);
  try {
    poolPort = await first.ready;
    const rest = [];
    for (let n = 2; n <= count; n++) {
      const w = spawnWorker(n, poolPort);
      slots.set(n, w.slot);
      rest.push(w.ready);
    }
    await Promise.all(rest);
  } catch (e) {
    await endAll(0, 0);
    throw e;
  }

  return {
    port: poolPort,
    size: () => [...slots.values()].filter((s) => s.ready).length,
    async metrics(timeoutMs) {
      // A drained worker no longer answers: not asked, rather than reported as stuck.
      const serving = [...slots.values()].filter((s) => s.ready && !s.drained);
      const answers = await Promise.all(
        serving.map(
          (s) =>
            new Promise<MetricJSON[] | null>((resolve) => {
              const id = nextId++;
              const timer = setTimeout(() => {
                pending.delete(id);
                // Its loop has not turned for `timeoutMs`: that is the one thing known about it,
                // and what the event-loop alert needs to see a stuck worker.
                resolve(draining || s.drained ? null : unansweredWorker(s.n, timeoutMs));
              }, timeoutMs);
              pending.set(id, (m) => {
                clearTimeout(timer);
                pending.delete(id);
                resolve(m);
              });
              s.worker.postMessage({ type: 'metrics', id } satisfies ToWorker);
            }),
        ),
      );
      return answers.filter((a): a is MetricJSON[] => a !== null);
    },
    drain: endAll,
  };
}

/** A port free right now, found with a listen socket of its own (closed at once). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    uWS.App().listen(host, 0, (socket) => {
      if (socket === false) {
        reject(new Error(`The data plane could not listen on ${host}`));
        return;
      }
      const port = uWS.us_socket_local_port(socket as unknown as uWS.us_socket);
      uWS.us_listen_socket_close(socket);
      resolve(port);
    });
  });
}

/** The worker's side: a `data` instance, answering the main thread until it is drained. */
async function runWorker(data: WorkerData, port: NonNullable<typeof parentPort>): Promise<void> {
  const post = (m: FromWorker) => port.postMessage(m);
  const logger = createLogger({ level: data.config.logLevel, base: { worker: data.worker } });
  // A listen socket on port 0 is not opened for sharing: the first worker picks the port, then
  // listens on it like the others.
  const listenPort = data.port === 0 ? await freePort(data.config.host) : data.port;
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(
      { ...data.config, port: listenPort },
      { role: 'data', worker: data.worker, logger },
    );
  } catch (e) {
    post({ type: 'failed', message: e instanceof Error ? e.message : String(e) });
    return;
  }
  const drain = (delayMs: number, timeoutMs: number) =>
    server.close(timeoutMs, delayMs).then(
      () => {
        post({ type: 'drained' });
        // Nothing more to answer: the thread ends once its last connection is gone.
        port.off('message', onMessage);
        port.unref();
      },
      (err: unknown) => logger.error({ err }, 'error while draining'),
    );
  const onMessage = (m: ToWorker) => {
    if (m.type === 'metrics') {
      server.metrics.metricsJSON().then(
        (metrics) => post({ type: 'metrics', id: m.id, metrics }),
        (err: unknown) => logger.error({ err }, 'metrics failed'),
      );
    } else if (m.type === 'drain') {
      void drain(m.delayMs, m.timeoutMs);
    }
  };
  port.on('message', onMessage);
  // A thread ended by an uncaught error while its listen socket is open would abort the whole
  // process: drain this worker instead (the main thread starts another once it has ended).
  const failed = (err: unknown) => {
    logger.fatal({ err }, 'data-plane worker failed; draining it');
    void drain(0, data.config.drainTimeoutMs);
  };
  process.on('uncaughtException', failed);
  process.on('unhandledRejection', failed);
  post({ type: 'ready', port: server.dataPort });
}

if (!isMainThread && parentPort !== null && (workerData as Partial<WorkerData> | null)?.kind === KIND) {
  const port = parentPort;
  runWorker(workerData as WorkerData, port).catch((e: unknown) => {
    port.postMessage({
      type: 'failed',
      message: e instanceof Error ? e.message : String(e),
    } satisfies FromWorker);
  });
}
