/**
 * Builds the console (console/src) into dist/console: the script, the editor's chunk (loaded on
 * the rule sets page only) and the style sheet, named by their content hash, the page naming them, and a brotli and a gzip copy of each file, so that the
 * server answers compressed without compressing per request (server/control/console.ts).
 * Run by `npm run build`; `node console/build.mjs` alone rebuilds only the console.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'dist', 'console');
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });

const result = await build({
  entryPoints: [join(here, 'src', 'main.tsx')],
  bundle: true,
  format: 'esm',
  target: ['chrome110', 'firefox115', 'safari16'],
  minify: true,
  sourcemap: 'linked',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: join(out, 'assets'),
  // The editor (CodeMirror) is its own chunk, loaded by the rule sets page only.
  splitting: true,
  entryNames: '[name]-[hash]',
  chunkNames: 'chunk-[hash]',
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
});

const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const script = outputs.find((f) => /^main-.*\.js$/.test(f));
const style = outputs.find((f) => /^main-.*\.css$/.test(f));
if (script === undefined || style === undefined)
  throw new Error(`console build: missing outputs in ${outputs}`);
const page = readFileSync(join(here, 'src', 'index.html'), 'utf8')
  .replace('%SCRIPT%', `/console/assets/${script}`)
  .replace('%STYLE%', `/console/assets/${style}`);
writeFileSync(join(out, 'index.html'), page);

const files = ['index.html', ...outputs.map((f) => `assets/${f}`)];
let total = 0;
let packed = 0;
for (const f of files) {
  const path = join(out, f);
  const data = readFileSync(path);
  // Source maps are read by developers' tools only: kept uncompressed (and out of the totals).
  if (!/\.(html|js|css)$/.test(f)) continue;
  const br = brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } });
  writeFileSync(`${path}.br`, br);
  writeFileSync(`${path}.gz`, gzipSync(data, { level: 9 }));
  total += data.length;
  packed += br.length;
}
console.log(
  `console: ${files.length} files in dist/console, ${Math.round(total / 1024)} KiB (${Math.round(packed / 1024)} KiB brotli)`,
);
