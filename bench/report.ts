/**
 * Shared by the micro-benchmarks: one measured row (mitata median and p99, single calls timed
 * one at a time), the table line, and writing the figures to bench/results/<name>-<date>.json
 * and bench/results/<name>-latest.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { measure } from 'mitata';
import { projectRoot } from '../server/project.js';
import { type PerCall, perCall } from './timing.js';

export interface Row {
  name: string;
  /** mitata: median of samples, ns (for fast functions a sample is the mean of a batch) */
  medianNs: number;
  /** mitata: 99th percentile of samples, ns */
  p99Ns: number;
  /** one call timed at a time, ns (includes the timer's own cost, about 100 ns) */
  perCall: PerCall;
  opsPerSec: number;
}

export function time(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`;
  return `${ns.toFixed(0)} ns`;
}

export function ops(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M/s`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k/s`;
  return `${n.toFixed(0)} /s`;
}

export const HEAD = `${'benchmark'.padEnd(52)}${'median'.padStart(11)}${'p99'.padStart(11)}${'call p50'.padStart(11)}${'call p99'.padStart(11)}${'ops/s'.padStart(12)}`;

export function line(r: Row): string {
  return `${r.name.padEnd(52)}${time(r.medianNs).padStart(11)}${time(r.p99Ns).padStart(11)}${time(r.perCall.p50Ns).padStart(11)}${time(r.perCall.p99Ns).padStart(11)}${ops(r.opsPerSec).padStart(12)}`;
}

/** Measures `fn` (mitata, then single calls), prints its line and returns the row. */
export async function bench(name: string, fn: () => unknown, samples = 20_000): Promise<Row> {
  const stats = await measure(fn);
  const row: Row = {
    name,
    medianNs: stats.p50,
    p99Ns: stats.p99,
    perCall: await perCall(fn, samples),
    opsPerSec: 1e9 / stats.p50,
  };
  console.log(line(row));
  return row;
}

/** Prints the ratios under their heading, names padded to `width`. */
export function printRatios(ratios: Record<string, number>, width = 40): void {
  console.log('\nratios (medians)');
  for (const [name, r] of Object.entries(ratios))
    console.log(`  ${name.padEnd(width)}${r.toFixed(2).padStart(8)}`);
}

export function machine(): Record<string, unknown> {
  return {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? null,
  };
}

/** Writes `data` (with the date and the machine) to bench/results/<name>-<date>.json and -latest. */
export function writeResults(name: string, data: Record<string, unknown>): void {
  const date = new Date();
  const stamp = date.toISOString().slice(0, 19).replace(/:/g, '-');
  const dir = join(projectRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const json = `${JSON.stringify({ date: date.toISOString(), ...machine(), ...data }, null, 2)}\n`;
  writeFileSync(join(dir, `${name}-${stamp}.json`), json);
  writeFileSync(join(dir, `${name}-latest.json`), json);
  console.log(`\nwrote bench/results/${name}-${stamp}.json and bench/results/${name}-latest.json`);
}
