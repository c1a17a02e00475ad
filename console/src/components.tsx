/** Pieces every page uses: errors as the API gives them, progress, confirmation, charts. */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { ApiError, type RuleError } from './api';

/** An error as the API gave it: code, message, path, and every rule-set error with its place. */
export function ErrorBox({ error }: { error: unknown }) {
  if (error === null || error === undefined) return null;
  const e =
    error instanceof ApiError
      ? error
      : new ApiError(0, 'console_error', (error as Error)?.message ?? String(error));
  return (
    <div class="error" role="alert">
      <strong>
        <code>{e.code}</code>
        {e.status > 0 ? ` (HTTP ${e.status})` : ''}
      </strong>
      : {e.message}
      {e.path !== undefined && e.path !== '' && (
        <>
          {' '}
          at <code>{e.path}</code>
        </>
      )}
      {e.errors.length > 0 && <RuleErrorList items={e.errors} />}
    </div>
  );
}

/**
 * Rule-set errors or warnings with their place: `line L, column C`, as a button to that place
 * when `go` is given (the editor's lists), else as text.
 */
export function RuleErrorList({
  items,
  label,
  className = '',
  go,
}: {
  items: readonly RuleError[];
  label?: string;
  className?: string;
  go?: (r: RuleError) => void;
}) {
  return (
    <ul class={`rule-errors ${className}`} aria-label={label}>
      {items.map((r, i) => {
        const where =
          r.line === undefined
            ? null
            : `line ${r.line}${r.column !== undefined ? `, column ${r.column}` : ''}`;
        return (
          <li key={i}>
            {where !== null &&
              (go === undefined ? (
                <span class="where">{where}: </span>
              ) : (
                <>
                  <button type="button" class="where link" onClick={() => go(r)}>
                    {where}
                  </button>{' '}
                </>
              ))}
            <code>{r.path === '' ? '(rule set)' : r.path}</code> {r.message} <code>[{r.code}]</code>
          </li>
        );
      })}
    </ul>
  );
}

/** A long call in flight: elapsed time against its bound, and a way to stop waiting. */
export function Progress({
  label,
  boundMs,
  onCancel,
}: {
  label: string;
  boundMs: number;
  onCancel: () => void;
}) {
  const [elapsed, setElapsed] = useState(0);
  useEffect(() => {
    const t0 = performance.now();
    const timer = setInterval(() => setElapsed(performance.now() - t0), 100);
    return () => clearInterval(timer);
  }, []);
  return (
    <div class="progress" role="status" aria-live="polite">
      <label>
        {label}: {(elapsed / 1000).toFixed(1)} s of at most {(boundMs / 1000).toFixed(0)} s{' '}
        <progress max={boundMs} value={Math.min(elapsed, boundMs)} />
      </label>{' '}
      <button type="button" onClick={onCancel}>
        Cancel
      </button>
    </div>
  );
}

/**
 * Runs a call with progress and cancellation: `run(signal => call(...))` resolves with the answer
 * (null when cancelled); `busy`, `error` for rendering.
 */
export function useCall<T>() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [result, setResult] = useState<T | null>(null);
  const abort = useRef<AbortController | null>(null);
  const run = async (f: (signal: AbortSignal) => Promise<T>): Promise<T | null> => {
    abort.current?.abort();
    const ctl = new AbortController();
    abort.current = ctl;
    setBusy(true);
    setError(null);
    try {
      const r = await f(ctl.signal);
      if (abort.current === ctl) setResult(r);
      return r;
    } catch (e) {
      if ((e as Error).name !== 'AbortError') setError(e);
      return null;
    } finally {
      if (abort.current === ctl) {
        setBusy(false);
        abort.current = null;
      }
    }
  };
  const cancel = () => {
    abort.current?.abort();
    abort.current = null;
    setBusy(false);
  };
  return { busy, error, result, run, cancel, setError, setResult };
}

/** A modal question: what the change does, then Confirm or Cancel (Escape cancels). */
export function Confirm({
  title,
  children,
  confirmLabel,
  onConfirm,
  onCancel,
}: {
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d !== null && !d.open) d.showModal();
  }, []);
  return (
    <dialog
      ref={ref}
      aria-labelledby="confirm-title"
      onCancel={(e) => {
        e.preventDefault();
        onCancel();
      }}
    >
      <h2 id="confirm-title">{title}</h2>
      <div class="confirm-body">{children}</div>
      <div class="actions">
        <button type="button" onClick={onCancel}>
          Cancel
        </button>{' '}
        <button type="button" class="primary" onClick={onConfirm}>
          {confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

export interface Series {
  label: string;
  values: number[];
  color: string;
}

/** A time series chart (uPlot) over days, with its numbers in a table for screen readers. */
export function DailyChart({ title, days, series }: { title: string; days: string[]; series: Series[] }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (el === null || days.length === 0) return;
    const xs = days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
    const plot = new uPlot(
      {
        width: Math.max(320, Math.min(900, el.clientWidth || 640)),
        height: 240,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
        scales: { x: { time: true } },
        axes: [{}, { size: 60 }],
        series: [
          { label: 'day' },
          ...series.map((s) => ({ label: s.label, stroke: s.color, width: 2, points: { show: true } })),
        ],
      },
      [xs, ...series.map((s) => s.values)],
      el,
    );
    return () => plot.destroy();
  }, [days.join(','), JSON.stringify(series)]);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} class="chart-canvas" data-points={days.length} aria-hidden="true" />
      <details>
        <summary>Numbers</summary>
        <table>
          <caption class="sr-only">{title}</caption>
          <thead>
            <tr>
              <th scope="col">day</th>
              {series.map((s) => (
                <th scope="col" key={s.label}>
                  {s.label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {days.map((d, i) => (
              <tr key={d}>
                <th scope="row">{d}</th>
                {series.map((s) => (
                  <td key={s.label}>{s.values[i] ?? 0}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}

/** Horizontal bars with their values: people per stage, audience per segment. */
export function Bars({
  title,
  rows,
}: {
  title: string;
  rows: { label: string; value: number; low?: number; high?: number; note?: string; digits?: number }[];
}) {
  const max = Math.max(1, ...rows.map((r) => r.high ?? r.value));
  return (
    <figure class="bars">
      <figcaption>{title}</figcaption>
      <table>
        <tbody>
          {rows.map((r) => (
            <tr key={r.label}>
              <th scope="row">{r.label}</th>
              <td class="bar-cell">
                <span class="bar" style={{ width: `${(100 * r.value) / max}%` }} />
                {r.low !== undefined && r.high !== undefined && r.high > r.low && (
                  <span
                    class="whisker"
                    style={{ left: `${(100 * r.low) / max}%`, width: `${(100 * (r.high - r.low)) / max}%` }}
                  />
                )}
              </td>
              <td class="num">
                {fmt(r.value, r.digits ?? 0)}
                {r.low !== undefined && r.high !== undefined && r.high !== r.low
                  ? ` (${fmt(r.low)}–${fmt(r.high)})`
                  : ''}
                {r.note === undefined ? '' : ` ${r.note}`}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}

/** A labelled drop-down list (the label is the select's accessible name, whatever its options). */
export function Choice({
  label,
  value,
  options,
  onChange,
}: {
  label: string;
  value: string;
  options: readonly { value: string; text: string }[];
  onChange: (value: string) => void;
}) {
  return (
    <label>
      {label}{' '}
      <select
        aria-label={label}
        value={value}
        onChange={(e) => onChange((e.target as HTMLSelectElement).value)}
      >
        {options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.text}
          </option>
        ))}
      </select>
    </label>
  );
}

/** Options for numbers of days. */
export const dayOptions = (list: readonly number[]) =>
  list.map((n) => ({ value: String(n), text: String(n) }));

export const fmt = (n: number | null | undefined, digits = 0) =>
  n === null || n === undefined ? '—' : n.toLocaleString('en-US', { maximumFractionDigits: digits });
export const pct = (n: number | null | undefined, digits = 1) =>
  n === null || n === undefined ? '—' : `${(n * 100).toFixed(digits)}%`;
export const when = (iso: string | undefined) =>
  iso === undefined
    ? ''
    : iso
        .replace('T', ' ')
        .replace(/\.\d+Z$/, ' UTC')
        .replace(/Z$/, ' UTC');
