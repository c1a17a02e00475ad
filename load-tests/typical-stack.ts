/**
 * What a team would build instead: Hono on @hono/node-server, the profile a JSON string in Redis
 * (ioredis GET), the demo rule set's segments evaluated by json-rules-engine, and the campaign
 * chosen by priority among those whose segments and stages match, per placement.
 *   PORT=<port> REDIS_URL=<url> JSON_PREFIX=json:p: node dist/load-tests/typical-stack.js
 *
 * The translation of rules/examples/demo.yaml is written once, below. It does less than the real
 * server (no frequency caps, no hold-outs, no quiet hours, no send-time search), so the
 * comparison favours it.
 */
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { Redis } from 'ioredis';
import { Engine, type RuleProperties, type TopLevelCondition } from 'json-rules-engine';

const FUNNEL = ['aware', 'appeal', 'act', 'advocate'];

const notChurned = { fact: 'tags', operator: 'doesNotContain', value: 'status:churned' };
const dealSeeker: TopLevelCondition = {
  any: [
    { fact: 'tags', operator: 'contains', value: 'circle:deal-seeker' },
    { fact: 'tags', operator: 'startsWithAny', value: 'group:' },
  ],
};

/** The demo segments, as json-rules-engine rules (event type: the segment id). */
export const SEGMENT_RULES: RuleProperties[] = [
  {
    event: { type: 'highend-business' },
    conditions: {
      all: [
        { fact: 'tags', operator: 'contains', value: 'circle:business' },
        { fact: 'price_band', operator: 'greaterThanInclusive', value: 4000 },
        notChurned,
      ],
    },
  },
  {
    event: { type: 'mobile-gamer' },
    conditions: {
      any: [
        { fact: 'tags', operator: 'contains', value: 'circle:mobile-gamer' },
        { fact: 'tags', operator: 'contains', value: 'interest:esports' },
      ],
    },
  },
  {
    event: { type: 'vivo-high-clv' },
    conditions: { all: [{ fact: 'clv_vivo', operator: 'greaterThanInclusive', value: 2000 }] },
  },
  {
    event: { type: 'k12-parent' },
    conditions: {
      all: [
        {
          any: [
            { fact: 'tags', operator: 'contains', value: 'circle:new-parent' },
            { fact: 'tags', operator: 'contains', value: 'circle:k12-parent' },
          ],
        },
        { fact: 'city_tier', operator: 'in', value: [1, 2] },
      ],
    },
  },
  {
    event: { type: 'student' },
    conditions: {
      all: [
        { fact: 'tags', operator: 'contains', value: 'circle:student' },
        { fact: 'age', operator: 'greaterThanInclusive', value: 12 },
        { fact: 'age', operator: 'lessThanInclusive', value: 22 },
      ],
    },
  },
  { event: { type: 'deal-seeker' }, conditions: dealSeeker },
  {
    event: { type: 'joymall-buyer' },
    conditions: {
      all: [
        { fact: 'stage_joymall', operator: 'greaterThanInclusive', value: FUNNEL.indexOf('act') },
        dealSeeker,
        notChurned,
      ],
    },
  },
];

interface Campaign {
  id: string;
  brand: string;
  segments: string[];
  stages: string[] | null;
  priority: number;
  flight: [number, number] | null;
  channels: string[];
  creatives: Array<{ id: string; stages: string[] }>;
}

/** The demo campaigns, highest priority first. */
export const CAMPAIGNS: Campaign[] = (
  [
    {
      id: 'joymall-1111',
      brand: 'joymall',
      segments: ['joymall-buyer'],
      stages: ['act', 'advocate'],
      priority: 20,
      flight: [Date.parse('2026-10-24T12:00:00Z'), Date.parse('2026-11-11T15:59:59Z')],
      channels: ['display', 'app_push', 'sms', 'email'],
      creatives: [
        { id: 'joymall-1111-coupon', stages: ['act'] },
        { id: 'joymall-1111-vip', stages: ['advocate'] },
      ],
    },
    {
      id: 'x90-launch',
      brand: 'vivo',
      segments: ['highend-business', 'mobile-gamer', 'vivo-high-clv'],
      stages: ['aware', 'appeal', 'act'],
      priority: 10,
      flight: [Date.parse('2026-10-31T16:00:00Z'), Date.parse('2027-10-31T15:59:59Z')],
      channels: ['display', 'native', 'app_push', 'email'],
      creatives: [
        { id: 'x90-brand-film', stages: ['aware'] },
        { id: 'x90-camera-hero', stages: ['appeal'] },
        { id: 'x90-trade-in', stages: ['act'] },
      ],
    },
    {
      id: 'brightpad-back-to-school',
      brand: 'brightpad',
      segments: ['k12-parent', 'student'],
      stages: null,
      priority: 5,
      flight: null,
      channels: ['display', 'app_push', 'sms'],
      creatives: [
        { id: 'brightpad-eye-care', stages: ['aware', 'appeal'] },
        { id: 'brightpad-coupon', stages: ['act'] },
        { id: 'brightpad-accessories', stages: ['advocate'] },
      ],
    },
  ] satisfies Campaign[]
).sort((a, b) => b.priority - a.priority);

export function createEngine(): Engine {
  const engine = new Engine(SEGMENT_RULES, { allowUndefinedFacts: true });
  engine.addOperator('startsWithAny', (fact: unknown, prefix: unknown) =>
    Array.isArray(fact) && typeof prefix === 'string'
      ? fact.some((t) => typeof t === 'string' && t.startsWith(prefix))
      : false,
  );
  return engine;
}

interface StoredProfile {
  id: string;
  tags: string[];
  stages?: Record<string, string>;
  clv?: Record<string, number>;
  attrs?: Record<string, string | number | boolean>;
}

/** The facts json-rules-engine sees for one person. */
export function factsOf(p: StoredProfile): Record<string, unknown> {
  const facts: Record<string, unknown> = { tags: p.tags, ...(p.attrs ?? {}) };
  for (const [brand, v] of Object.entries(p.clv ?? {})) facts[`clv_${brand}`] = v;
  for (const [brand, s] of Object.entries(p.stages ?? {})) facts[`stage_${brand}`] = FUNNEL.indexOf(s);
  return facts;
}

interface PlacementIn {
  id: string;
  channels: string[];
}

/** One campaign and creative per placement, by priority. */
export function choose(
  p: StoredProfile,
  matched: Set<string>,
  placements: PlacementIn[],
  now: number,
): Array<{ placement: string; campaign: string | null; creative: string | null }> {
  return placements.map((pl) => {
    for (const c of CAMPAIGNS) {
      if (c.flight !== null && (now < c.flight[0] || now > c.flight[1])) continue;
      if (!c.segments.some((s) => matched.has(s))) continue;
      if (!c.channels.some((ch) => pl.channels.includes(ch))) continue;
      const stage = p.stages?.[c.brand] ?? 'aware';
      if (c.stages !== null && !c.stages.includes(stage)) continue;
      const creative = c.creatives.find((cr) => cr.stages.includes(stage)) ?? null;
      if (creative === null) continue;
      return { placement: pl.id, campaign: c.id, creative: creative.id };
    }
    return { placement: pl.id, campaign: null, creative: null };
  });
}

function main(): void {
  const port = Number(process.env.PORT ?? 0);
  const prefix = process.env.JSON_PREFIX ?? 'json:p:';
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const engine = createEngine();
  const app = new Hono();
  app.post('/v1/decide', async (c) => {
    const body = (await c.req.json()) as { user?: { id?: string }; placements?: PlacementIn[] };
    const id = body.user?.id;
    if (typeof id !== 'string' || !Array.isArray(body.placements))
      return c.json({ error: 'bad request' }, 400);
    const raw = await redis.get(prefix + id);
    const profile: StoredProfile = raw === null ? { id, tags: [] } : (JSON.parse(raw) as StoredProfile);
    const { events } = await engine.run(factsOf(profile));
    const matched = new Set(events.map((e) => e.type));
    return c.json({ user: id, decisions: choose(profile, matched, body.placements, Date.now()) });
  });
  serve({ fetch: app.fetch, port, hostname: '127.0.0.1' }, () =>
    console.log(`typical-stack: listening on ${port}`),
  );
}

if (process.argv[1]?.endsWith('typical-stack.js')) main();
