#!/usr/bin/env node
// The `mindshare` command: runs the compiled command line (server/cli/mindshare.ts).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const compiled = new URL('../dist/server/cli/mindshare.js', import.meta.url);
if (!existsSync(fileURLToPath(compiled))) {
  process.stderr.write('mindshare: not built yet; run `npm run build` in the project first\n');
  process.exit(2);
}
const { runFromProcess } = await import(compiled.href);
await runFromProcess();
