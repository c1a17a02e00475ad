/**
 * Preview and what-if: a person (stored, by id or aliases, or an inline profile) and placements,
 * decided by the control plane's preview route with its explanation; and a draft's what-if on a
 * sample of stored people. Both go through the control plane, never the data plane.
 */
import { useEffect, useState } from 'preact/hooks';
import { CHANNELS, type Channel } from '../../rules/types';
import {
  call,
  type Placement,
  type PreviewAnswer,
  sourceType,
  type VersionList,
  type WhatIfAnswer,
} from './api';
import { Choice, ErrorBox, fmt, Progress, pct, useCall, when } from './components';

const DEFAULT_PLACEMENTS = 'home-banner display banner-300x250\npush app_push';

/** One placement per line: `id [channel …] [format …]` (a word with a dash and digits is a format). */
export function parsePlacements(text: string): Placement[] {
  const channels = new Set<string>(CHANNELS);
  const out: Placement[] = [];
  for (const line of text.split('\n')) {
    const words = line
      .trim()
      .split(/[\s,]+/)
      .filter(Boolean);
    const [id, ...rest] = words;
    if (id === undefined) continue;
    const p: Placement = { id };
    const ch = rest.filter((w) => channels.has(w));
    const fm = rest.filter((w) => !channels.has(w));
    if (ch.length > 0) p.channels = ch as Channel[];
    if (fm.length > 0) p.formats = fm;
    out.push(p);
  }
  return out;
}

/** `kind:value` pairs, one per line or comma separated, as aliases. */
function parseAliases(text: string): Record<string, string> {
  const ids: Record<string, string> = {};
  for (const part of text.split(/[\n,]+/)) {
    const i = part.indexOf(':');
    if (i > 0) ids[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return ids;
}

type Who = 'id' | 'aliases' | 'profile';

export function PreviewPage() {
  const [who, setWho] = useState<Who>('id');
  const [personId, setPersonId] = useState('p-1001');
  const [aliases, setAliases] = useState('idfa:');
  const [profile, setProfile] = useState(
    '{\n  "id": "draft-person",\n  "tags": ["circle:business"],\n  "attrs": { "price_band": 5000 },\n  "clv": { "vivo": 2500 }\n}',
  );
  const [placements, setPlacements] = useState(DEFAULT_PLACEMENTS);
  const [at, setAt] = useState('');
  const [version, setVersion] = useState('');
  const [versions, setVersions] = useState<number[]>([]);
  const preview = useCall<PreviewAnswer>();

  useEffect(() => {
    call<VersionList>('/v1/rulesets')
      .then((l) => setVersions(l.versions.map((v) => v.version)))
      .catch(() => undefined);
  }, []);

  const run = (e: Event) => {
    e.preventDefault();
    void preview.run(async (signal) => {
      const body: Record<string, unknown> = { placements: parsePlacements(placements) };
      if (who === 'id') body.user = { id: personId.trim() };
      else if (who === 'aliases') body.user = { ids: parseAliases(aliases) };
      else {
        try {
          body.profile = JSON.parse(profile);
        } catch (err) {
          throw new Error(`The inline profile is not valid JSON: ${(err as Error).message}`);
        }
      }
      if (at.trim() !== '') body.at = new Date(at).toISOString();
      if (version !== '') body.ruleset = Number(version);
      return call<PreviewAnswer>('/v1/preview', { body, signal });
    });
  };

  const r = preview.result;
  return (
    <section aria-labelledby="preview-title">
      <h1 id="preview-title">Preview</h1>
      <form onSubmit={run} class="form">
        <fieldset>
          <legend>Person</legend>
          {(['id', 'aliases', 'profile'] as const).map((w) => (
            <label key={w} class="choice">
              <input type="radio" name="who" checked={who === w} onChange={() => setWho(w)} />{' '}
              {w === 'id' ? 'stored, by id' : w === 'aliases' ? 'stored, by aliases' : 'inline profile'}
            </label>
          ))}
          {who === 'id' && (
            <label>
              Person id{' '}
              <input
                value={personId}
                onInput={(e) => setPersonId((e.target as HTMLInputElement).value)}
                required
              />
            </label>
          )}
          {who === 'aliases' && (
            <label>
              Aliases (<code>kind:value</code>, comma separated){' '}
              <input value={aliases} onInput={(e) => setAliases((e.target as HTMLInputElement).value)} />
            </label>
          )}
          {who === 'profile' && (
            <label>
              Profile (JSON, as PUT /v1/profiles takes it, with an id)
              <textarea
                rows={7}
                value={profile}
                onInput={(e) => setProfile((e.target as HTMLTextAreaElement).value)}
              />
            </label>
          )}
        </fieldset>
        <PlacementsField value={placements} onChange={setPlacements} />
        <Choice
          label="Rule set"
          value={version}
          options={[
            { value: '', text: 'the active one' },
            ...versions.map((v) => ({ value: String(v), text: `version ${v}` })),
          ]}
          onChange={setVersion}
        />
        <label>
          At (optional, local time){' '}
          <input
            type="datetime-local"
            value={at}
            onInput={(e) => setAt((e.target as HTMLInputElement).value)}
          />
        </label>
        <button type="submit" class="primary">
          Decide
        </button>
      </form>
      <ErrorBox error={preview.error} />
      {preview.busy && <p role="status">Deciding…</p>}
      {r !== null && (
        <div aria-live="polite">
          <p>
            Person <code>{r.user}</code> {r.known ? '(stored)' : '(not stored: decided on an empty profile)'},
            rule set {r.ruleset}, at {when(r.at)}.
          </p>
          <table class="decisions">
            <caption>Decisions</caption>
            <thead>
              <tr>
                <th scope="col">Placement</th>
                <th scope="col">Campaign</th>
                <th scope="col">Creative</th>
                <th scope="col">Segment</th>
                <th scope="col">Stage</th>
                <th scope="col">Channel</th>
                <th scope="col">Send at</th>
              </tr>
            </thead>
            <tbody>
              {r.decisions.map((d) => (
                <tr key={d.placement}>
                  <th scope="row">{d.placement}</th>
                  <td>{d.campaign ?? <em>no fill</em>}</td>
                  <td>{d.creative ?? ''}</td>
                  <td>{d.segment ?? ''}</td>
                  <td>{d.stage ?? ''}</td>
                  <td>{d.channel ?? ''}</td>
                  <td>{when(d.sendAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {r.ghosts.length > 0 && (
            <p>
              Held out (ghost exposures):{' '}
              {r.ghosts.map((g) => `${g.campaign} on ${g.placement} (${g.creative})`).join('; ')}
            </p>
          )}
          {r.explain !== undefined && (
            <>
              <p>
                Matched segments:{' '}
                {r.explain.segments.length === 0 ? (
                  <em>none</em>
                ) : (
                  r.explain.segments.map((s) => <code key={s}>{s} </code>)
                )}
              </p>
              <table class="explain">
                <caption>Why each campaign was chosen or dropped</caption>
                <thead>
                  <tr>
                    <th scope="col">Campaign</th>
                    <th scope="col">Outcome</th>
                    <th scope="col">Placement</th>
                    <th scope="col">Drop reason or score</th>
                  </tr>
                </thead>
                <tbody>
                  {r.explain.campaigns.map((c) => (
                    <tr key={`${c.campaign}-${c.placement ?? ''}`} class={c.status}>
                      <th scope="row">{c.campaign}</th>
                      <td>{c.status}</td>
                      <td>{c.placement ?? ''}</td>
                      <td>
                        {c.reason !== undefined ? (
                          <code>{c.reason}</code>
                        ) : c.rank !== undefined ? (
                          Object.entries(c.rank)
                            .map(([k, v]) => `${k} ${v}`)
                            .join(', ')
                        ) : (
                          ''
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
        </div>
      )}
      <WhatIf />
    </section>
  );
}

function PlacementsField({ value, onChange }: { value: string; onChange: (v: string) => void }) {
  return (
    <label>
      Placements, one per line: <code>id [channels…] [formats…]</code>
      <textarea rows={3} value={value} onInput={(e) => onChange((e.target as HTMLTextAreaElement).value)} />
    </label>
  );
}

function WhatIf() {
  const [draft, setDraft] = useState('');
  const [placements, setPlacements] = useState(DEFAULT_PLACEMENTS);
  const [sample, setSample] = useState(1000);
  const whatIf = useCall<WhatIfAnswer>();
  const timeoutMs = 5000;

  const load = async () => {
    try {
      setDraft(await call<string>('/v1/rulesets/active'));
    } catch (e) {
      whatIf.setError(e);
    }
  };

  const run = (e: Event) => {
    e.preventDefault();
    void whatIf.run((signal) =>
      call<WhatIfAnswer>('/v1/rulesets/what-if', {
        body: { ruleset: draft, placements: parsePlacements(placements), sample, timeoutMs },
        signal,
      }),
    );
  };
  const r = whatIf.result;
  return (
    <section aria-labelledby="whatif-title">
      <h2 id="whatif-title">What if</h2>
      <p class="hint">
        Decides a uniform sample of stored people with the active rule set and with a draft, and counts what
        changes.
      </p>
      <form onSubmit={run} class="form">
        <div>
          <button type="button" onClick={load}>
            Start from the active version
          </button>
        </div>
        <label>
          Draft rule set ({sourceType(draft) === 'application/json' ? 'JSON' : 'YAML'})
          <textarea
            rows={10}
            class="code"
            value={draft}
            onInput={(e) => setDraft((e.target as HTMLTextAreaElement).value)}
            required
          />
        </label>
        <PlacementsField value={placements} onChange={setPlacements} />
        <label>
          Sample (people){' '}
          <input
            type="number"
            min={1}
            max={10000}
            value={sample}
            onInput={(e) => setSample(Number((e.target as HTMLInputElement).value))}
          />
        </label>
        <button type="submit" class="primary" disabled={whatIf.busy}>
          Run what-if
        </button>
      </form>
      {whatIf.busy && (
        <Progress label="Deciding the sample twice" boundMs={timeoutMs} onCancel={whatIf.cancel} />
      )}
      <ErrorBox error={whatIf.error} />
      {r !== null && !whatIf.busy && (
        <div aria-live="polite" class="whatif-result">
          <p>
            {fmt(r.changed)} of {fmt(r.decisions)} decisions change (
            {pct(r.decisions === 0 ? 0 : r.changed / r.decisions)}), on {fmt(r.sample.people)} people{' '}
            {r.exact ? '(every stored person)' : `of about ${fmt(r.sample.population)}`}
            {r.partial ? ', stopped early at the time bound' : ''}. Fill {pct(r.fill.before)} →{' '}
            {pct(r.fill.after)}.
          </p>
          <table>
            <caption>Per campaign</caption>
            <thead>
              <tr>
                <th scope="col">Campaign</th>
                <th scope="col">Before</th>
                <th scope="col">After</th>
                <th scope="col">Gained</th>
                <th scope="col">Lost</th>
              </tr>
            </thead>
            <tbody>
              {r.campaigns.map((c) => (
                <tr key={c.campaign}>
                  <th scope="row">{c.campaign}</th>
                  <td>{fmt(c.before)}</td>
                  <td>{fmt(c.after)}</td>
                  <td>{fmt(c.gained)}</td>
                  <td>{fmt(c.lost)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {r.changes.length > 0 && (
            <table>
              <caption>Most frequent changes</caption>
              <thead>
                <tr>
                  <th scope="col">Placement</th>
                  <th scope="col">From</th>
                  <th scope="col">To</th>
                  <th scope="col">Decisions</th>
                  <th scope="col">Examples</th>
                </tr>
              </thead>
              <tbody>
                {r.changes.map((c, i) => (
                  <tr key={i}>
                    <th scope="row">{c.placement}</th>
                    <td>{c.from === null ? <em>no fill</em> : `${c.from.campaign} / ${c.from.creative}`}</td>
                    <td>{c.to === null ? <em>no fill</em> : `${c.to.campaign} / ${c.to.creative}`}</td>
                    <td>{fmt(c.decisions)}</td>
                    <td>{(c.examples ?? []).join(', ')}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      )}
    </section>
  );
}
