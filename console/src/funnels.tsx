/** Funnels: per brand, people per stage, flow rates between stages, and moves per day. */
import { useEffect, useState } from 'preact/hooks';
import { call, type FunnelAnswer } from './api';
import { Bars, Choice, DailyChart, dayOptions, ErrorBox, pct, useCall } from './components';
import { activeOutline, type Outline } from './outline';

const COLORS = ['#2563eb', '#d97706', '#059669', '#db2777', '#7c3aed', '#0891b2'];

export function FunnelsPage() {
  const outline = useCall<Outline>();
  const funnel = useCall<FunnelAnswer>();
  const [brand, setBrand] = useState('');
  const [days, setDays] = useState(30);

  useEffect(() => {
    void outline
      .run(() => activeOutline())
      .then((o) => {
        if (o !== null && o.brands.length > 0) setBrand((b) => (b === '' ? o.brands[0]! : b));
      });
  }, []);
  useEffect(() => {
    if (brand === '') return;
    void funnel.run((signal) =>
      call<FunnelAnswer>(`/v1/funnels/${encodeURIComponent(brand)}?days=${days}`, { signal }),
    );
  }, [brand, days]);

  const f = funnel.result;
  const moves = f === null ? [] : [...new Set(f.daily.flatMap((d) => Object.keys(d.moves)))].sort();
  return (
    <section aria-labelledby="funnels-title">
      <h1 id="funnels-title">Funnels</h1>
      <ErrorBox error={outline.error} />
      <div class="form row">
        <Choice
          label="Brand"
          value={brand}
          options={(outline.result?.brands ?? []).map((b) => ({ value: b, text: b }))}
          onChange={setBrand}
        />{' '}
        <Choice
          label="Days"
          value={String(days)}
          options={dayOptions([7, 30, 90])}
          onChange={(v) => setDays(Number(v))}
        />
      </div>
      <ErrorBox error={funnel.error} />
      {funnel.busy && <p role="status">Loading…</p>}
      {f !== null && (
        <div aria-live="polite">
          <p>
            Days in {f.timezone}, {f.from} to {f.to}.
          </p>
          <Bars
            title="People per stage now"
            rows={f.stages.map((s) => ({
              label: s.stage,
              value: s.people,
              ...(s.onLadder ? {} : { note: '(off the ladder)' }),
            }))}
          />
          <Bars
            title="Moved to the next stage over the window (the share of those who could)"
            rows={f.flow.map((x) => ({
              label: `${x.from} → ${x.to}`,
              value: x.moved,
              note: `(${pct(x.rate)})`,
            }))}
          />
          {moves.length === 0 ? (
            <p>No stage moves in these days.</p>
          ) : (
            <DailyChart
              title="Moves per day"
              days={f.daily.map((d) => d.day)}
              series={moves.map((m, i) => ({
                label: m.replace('>', ' → '),
                color: COLORS[i % COLORS.length]!,
                values: f.daily.map((d) => d.moves[m] ?? 0),
              }))}
            />
          )}
        </div>
      )}
    </section>
  );
}
