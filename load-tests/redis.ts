/**
 * The load run's processes: every child it starts is killed when it exits, and its private
 * redis-server (a free port on 127.0.0.1, never 6379, no persistence).
 */
import type { ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();
let hooked = false;

/** Every child started by the run is killed when it exits, however it exits. */
export function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
  if (hooked) return;
  hooked = true;
  const killAll = () => {
    for (const c of live) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

export { type ClusterHandle, startCluster } from '../test/redis-cluster.js';
// The redis-server the load run uses is the one the tests start: one harness for both.
export { freePort, type RedisHandle, startRedis } from '../test/redis-server.js';
