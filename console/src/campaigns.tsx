/**
 * Campaigns: budgets and their pace, delivery per day, the hold-out lift with its interval, and
 * the audience size of every segment, from the measurement routes.
 */
import { useEffect, useState } from 'preact/hooks';
import {
  type AudienceAnswer,
  type BudgetAnswer,
  type BudgetLine,
  call,
  type DeliveryAnswer,
  type LiftAnswer,
  type OutcomeLift,
} from './api';
import { Bars, Choice, DailyChart, dayOptions, ErrorBox, fmt, Progress, pct, useCall } from './components';
import { activeOutline, type Outline } from './outline';

const COUNTS = [
  ['decisions', '#2563eb'],
  ['ghosts', '#9ca3af'],
  ['impressions', '#0891b2'],
  ['clicks', '#d97706'],
  ['conversions', '#059669'],
  ['purchases', '#db2777'],
] as const;

const isoDay = (t: number) => new Date(t).toISOString().slice(0, 10);

export function CampaignsPage() {
  const outline = useCall<Outline>();
  const delivery = useCall<DeliveryAnswer>();
  const lift = useCall<LiftAnswer>();
  const budget = useCall<BudgetAnswer>();
  const [campaign, setCampaign] = useState('');
  const [days, setDays] = useState(14);

  useEffect(() => {
    void outline
      .run(() => activeOutline())
      .then((o) => {
        if (o !== null && o.campaigns.length > 0) setCampaign((c) => (c === '' ? o.campaigns[0]!.id : c));
      });
  }, []);
  useEffect(() => {
    if (campaign === '') return;
    const id = encodeURIComponent(campaign);
    // Up to today in the campaign's time zone (the route's default end).
    const from = isoDay(Date.now() - (days - 1) * 86_400_000);
    void delivery.run((signal) =>
      call<DeliveryAnswer>(`/v1/campaigns/${id}/delivery?from=${from}`, { signal }),
    );
    void lift.run((signal) => call<LiftAnswer>(`/v1/campaigns/${id}/lift`, { signal }));
    void budget.run((signal) => call<BudgetAnswer>(`/v1/campaigns/${id}/budget`, { signal }));
  }, [campaign, days]);

  const d = delivery.result;
  const l = lift.result;
  return (
    <section aria-labelledby="campaigns-title">
      <h1 id="campaigns-title">Campaigns</h1>
      <ErrorBox error={outline.error} />
      <div class="form row">
        <Choice
          label="Campaign"
          value={campaign}
          options={(outline.result?.campaigns ?? []).map((c) => ({
            value: c.id,
            text: `${c.id} (${c.brand})`,
          }))}
          onChange={setCampaign}
        />{' '}
        <Choice
          label="Days"
          value={String(days)}
          options={dayOptions([7, 14, 30, 90])}
          onChange={(v) => setDays(Number(v))}
        />{' '}
        {campaign !== '' && (
          <a href={`/v1/campaigns/${encodeURIComponent(campaign)}/delivery?format=csv`} download>
            Delivery as CSV
          </a>
        )}
      </div>

      <section aria-labelledby="budget-title">
        <h2 id="budget-title">Budget and pace</h2>
        <ErrorBox error={budget.error} />
        {budget.result !== null && (
          <div aria-live="polite">
            {budget.result.lines.length === 0 ? (
              <p>No budget: this campaign delivers as much as its rules allow.</p>
            ) : (
              budget.result.lines.map((line) => (
                <BudgetPanel key={line.creative ?? ''} line={line} currency={budget.result!.currency} />
              ))
            )}
          </div>
        )}
      </section>

      <section aria-labelledby="delivery-title">
        <h2 id="delivery-title">Delivery</h2>
        <ErrorBox error={delivery.error} />
        {d !== null && (
          <div aria-live="polite">
            <table class="totals">
              <caption>
                Totals, {d.from} to {d.to} ({d.timezone})
              </caption>
              <thead>
                <tr>
                  {COUNTS.map(([k]) => (
                    <th scope="col" key={k}>
                      {k}
                    </th>
                  ))}
                  <th scope="col">spend</th>
                </tr>
              </thead>
              <tbody>
                <tr>
                  {COUNTS.map(([k]) => (
                    <td key={k}>{fmt(d.totals[k])}</td>
                  ))}
                  <td>
                    {Object.entries(d.totals.spend)
                      .map(([cur, v]) => `${fmt(v, 2)} ${cur}`)
                      .join(', ') || '—'}
                  </td>
                </tr>
              </tbody>
            </table>
            <DailyChart
              title="Delivery per day"
              days={d.daily.map((x) => x.day)}
              series={COUNTS.map(([k, color]) => ({ label: k, color, values: d.daily.map((x) => x[k]) }))}
            />
          </div>
        )}
      </section>

      <section aria-labelledby="lift-title">
        <h2 id="lift-title">Lift (hold-out)</h2>
        <ErrorBox error={lift.error} />
        {l !== null && (
          <div aria-live="polite">
            <p>
              Hold-out share {pct(l.holdout)}: {fmt(l.arms.treatment.people)} people exposed,{' '}
              {fmt(l.arms.control.people)} held out.
            </p>
            <table class="lift">
              <caption>Outcomes per arm, with the 95% interval of the difference</caption>
              <thead>
                <tr>
                  <th scope="col">Outcome</th>
                  <th scope="col">Treatment rate</th>
                  <th scope="col">Control rate</th>
                  <th scope="col">Lift (absolute)</th>
                  <th scope="col">95% interval</th>
                  <th scope="col">Relative</th>
                  <th scope="col">p-value</th>
                  <th scope="col">Detectable effect</th>
                </tr>
              </thead>
              <tbody>
                <LiftRow name="conversions" o={l.conversions} />
                <LiftRow name="purchases" o={l.purchases} />
              </tbody>
            </table>
            <LiftInterval o={l.conversions} />
          </div>
        )}
      </section>
      <Audience />
    </section>
  );
}

const STATUS_TEXT: Record<BudgetLine['status'], string> = {
  spent: 'spent: no room left',
  behind: 'behind its pace',
  on_pace: 'on pace',
  ahead: 'ahead of its pace',
  unpaced: 'no pace to compare with yet',
};

/** One budget line: today's spent against its pace target and limit, in all, and the day's shape. */
function BudgetPanel({ line, currency }: { line: BudgetLine; currency: string }) {
  const unit = line.unit === 'spend' ? currency : line.unit;
  const t = line.today;
  const rows = [
    { label: 'spent today', value: t.spent },
    ...(t.target === null ? [] : [{ label: 'pace target by now', value: t.target }]),
    ...(t.limit === null
      ? []
      : [
          {
            // An even total spreads what is left over the flight's days: less than a daily amount.
            label:
              line.daily !== null && t.limit < line.daily ? "limit today (the total's share)" : 'limit today',
            value: t.limit,
          },
        ]),
    { label: 'committed (leased, not yet delivered)', value: t.committed },
  ];
  const name = line.creative === null ? 'Campaign budget' : `Creative ${line.creative}`;
  return (
    <div class="budget-line">
      <h3>
        {name}: {line.daily === null ? '' : `${fmt(line.daily)} ${unit} a day`}
        {line.daily !== null && line.total !== null ? ', ' : ''}
        {line.total === null ? '' : `${fmt(line.total)} ${unit} in all`} ({line.pacing})
      </h3>
      <p>
        <strong class={`status-${line.status}`}>{STATUS_TEXT[line.status]}</strong>
        {t.pace === null ? '' : `: ${pct(t.pace)} of its target by now`}. Spent in all {fmt(line.spentInAll)}{' '}
        {unit}
        {line.remaining === null ? '' : `, ${fmt(line.remaining)} left`}. Day {t.day}.
      </p>
      <Bars title={`${name}, today (${unit})`} rows={rows} />
      {line.pacing === 'even' && (
        <details>
          <summary>The day's shape the pace follows</summary>
          <Bars
            title="The day's shape the pace follows (share of the day's opportunities per hour)"
            rows={line.shape.map((share, h) => ({
              label: `${String(h).padStart(2, '0')}:00`,
              value: Math.round(share * 1000) / 10,
              digits: 1,
              note: `% (${fmt(t.opportunities[h] ?? 0)} today)`,
            }))}
          />
        </details>
      )}
    </div>
  );
}

function LiftRow({ name, o }: { name: string; o: OutcomeLift }) {
  return (
    <tr>
      <th scope="row">{name}</th>
      <td>
        {pct(o.treatment.rate, 2)} ({fmt(o.treatment.converted)}/{fmt(o.treatment.people)})
      </td>
      <td>
        {pct(o.control.rate, 2)} ({fmt(o.control.converted)}/{fmt(o.control.people)})
      </td>
      <td>{o.absolute === null ? '—' : `${(o.absolute * 100).toFixed(2)} pt`}</td>
      <td>
        {o.interval === null
          ? '—'
          : `${(o.interval.low * 100).toFixed(2)} to ${(o.interval.high * 100).toFixed(2)} pt`}
      </td>
      <td>{pct(o.relative)}</td>
      <td>{o.pValue === null ? '—' : o.pValue.toFixed(4)}</td>
      <td>
        {o.minimumDetectableEffect === null ? '—' : `${(o.minimumDetectableEffect * 100).toFixed(2)} pt`}
      </td>
    </tr>
  );
}

/** The conversion lift's interval drawn on an axis through zero. */
function LiftInterval({ o }: { o: OutcomeLift }) {
  if (o.interval === null || o.absolute === null)
    return <p>Not enough people in both arms for an interval yet.</p>;
  const span = Math.max(Math.abs(o.interval.low), Math.abs(o.interval.high), 0.001) * 1.1;
  const x = (v: number) => 50 + (50 * v) / span;
  return (
    <figure class="interval">
      <figcaption>Conversion lift and its 95% interval (percentage points; the line is no effect)</figcaption>
      <svg viewBox="0 0 100 12" role="img" aria-label={`lift ${(o.absolute * 100).toFixed(2)} points`}>
        <line x1="50" x2="50" y1="0" y2="12" class="zero" />
        <line x1={x(o.interval.low)} x2={x(o.interval.high)} y1="6" y2="6" class="range" />
        <circle cx={x(o.absolute)} cy="6" r="1.5" class="point" />
      </svg>
    </figure>
  );
}

function Audience() {
  const audience = useCall<AudienceAnswer>();
  const [sample, setSample] = useState(10_000);
  const timeoutMs = 10_000;
  const run = () =>
    audience.run((signal) =>
      call<AudienceAnswer>('/v1/audience', { body: { segments: 'all', sample, timeoutMs }, signal }),
    );
  const a = audience.result;
  return (
    <section aria-labelledby="audience-title">
      <h2 id="audience-title">Audience size per segment</h2>
      <div class="form row">
        <label>
          Sample (people){' '}
          <input
            type="number"
            min={100}
            max={100000}
            value={sample}
            onInput={(e) => setSample(Number((e.target as HTMLInputElement).value))}
          />
        </label>{' '}
        <button type="button" class="primary" onClick={run} disabled={audience.busy}>
          Count every segment
        </button>
      </div>
      {audience.busy && (
        <Progress label="Sampling stored people" boundMs={timeoutMs} onCancel={audience.cancel} />
      )}
      <ErrorBox error={audience.error} />
      {a !== null && !audience.busy && (
        <div aria-live="polite">
          <p>
            {a.exact
              ? `Exact: every one of the ${fmt(a.sample.people)} stored people.`
              : `Estimated from ${fmt(a.sample.people)} people of about ${fmt(a.sample.population)} (${a.interval}).`}
            {a.partial ? ' Stopped at the time bound: a smaller sample than asked.' : ''} {fmt(a.elapsedMs)}{' '}
            ms.
          </p>
          <Bars
            title="People per segment"
            rows={a.segments.map((s) => ({ label: s.segment, value: s.people, low: s.low, high: s.high }))}
          />
        </div>
      )}
    </section>
  );
}
