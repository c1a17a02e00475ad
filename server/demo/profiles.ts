/**
 * Deterministic synthetic people for the demo and for load tests: `p-0`, `p-1`, … Person `i` is
 * always the same (a PRNG seeded from `i`, never Math.random), so the embedded demo, a seeded
 * Redis and a load test all agree on who is who.
 *
 * People carry 20–40 tags from the demo rule set's vocabulary and beyond (circles, demographics,
 * categories, scenes, target groups, interests, purchase flags), numeric attributes (price band,
 * city tier, age), a funnel stage and a CLV per demo brand (vivo, brightpad, joymall), channel
 * affinities and active hours. `p-1001` is the README's example: a high-end business buyer at
 * `appeal` for vivo.
 */
import { createHash } from 'node:crypto';
import { mixHash } from '../../rules/compile.js';
import type { Channel, Profile, Scalar } from '../../rules/types.js';

/** The brands of the demo rule set. */
export const DEMO_BRANDS = ['vivo', 'brightpad', 'joymall'] as const;

const CIRCLES = [
  'business',
  'mobile-gamer',
  'console-gamer',
  'new-parent',
  'k12-parent',
  'student',
  'deal-seeker',
  'photographer',
  'fitness',
  'traveler',
  'foodie',
  'pet-owner',
  'car-owner',
  'beauty',
  'home-decor',
  'reader',
];
const CATEGORIES = [
  'phone',
  'tablet',
  'laptop',
  'tv',
  'console',
  'accessories',
  'books',
  'baby',
  'apparel',
  'beauty',
  'grocery',
  'home',
  'sports',
  'camera',
  'wearables',
  'appliances',
];
const SCENES = [
  'commute',
  'home',
  'office',
  'campus',
  'travel',
  'gym',
  'night-owl',
  'weekend',
  'shopping-mall',
  'family-time',
];
const INTERESTS = [
  'esports',
  'photography',
  'anime',
  'football',
  'basketball',
  'cooking',
  'k-drama',
  'music',
  'hiking',
  'finance',
  'parenting',
  'education',
  'fashion',
  'gadgets',
  'cars',
  'movies',
  'travel',
  'pets',
  'tea',
  'coffee',
  'skincare',
  'livestreams',
  'short-video',
  'outdoor',
];
const FLAGS = [
  'intent:high',
  'intent:medium',
  'buyer:repeat',
  'buyer:first-time',
  'coupon-user',
  'status:new-user',
];
const PRICE_BANDS = [300, 800, 1500, 2000, 3000, 4000, 5000, 6000, 8000, 10000];
const TIMEZONES = ['Asia/Hong_Kong', 'Asia/Taipei', 'Asia/Singapore', 'Asia/Tokyo'];
const CHANNELS: readonly Channel[] = ['display', 'video', 'native', 'app_push', 'sms', 'email'];
/** When profiles were last refreshed, roughly: 1 November 2026. */
const UPDATED_BASE = Date.parse('2026-11-01T00:00:00.000Z');
const DAY = 86_400_000;

type Rng = () => number;

/** A small fast PRNG (mulberry32) seeded from a person number and a stream salt. */
function rngFor(i: number, salt: number): Rng {
  let a = seedOf(i, salt);
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A well-spread seed for person `i` (up to 2^53) and a salt: the rules' hash mixer. */
function seedOf(i: number, salt: number): number {
  return mixHash(Math.imul(Math.floor(i / 2 ** 32), 0x85ebca6b) ^ salt, i);
}

const int = (r: Rng, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const chance = (r: Rng, p: number) => r() < p;
function pick<T>(r: Rng, items: readonly T[]): T {
  return items[Math.floor(r() * items.length)]!;
}
function pickWeighted<T>(r: Rng, items: readonly (readonly [T, number])[]): T {
  let total = 0;
  for (const [, w] of items) total += w;
  let x = r() * total;
  for (const [item, w] of items) {
    x -= w;
    if (x < 0) return item;
  }
  return items[items.length - 1]![0];
}
/** `n` distinct items. */
function sample<T>(r: Rng, items: readonly T[], n: number): T[] {
  const pool = items.slice();
  const out: T[] = [];
  for (let k = 0; k < n && pool.length > 0; k++) out.push(pool.splice(Math.floor(r() * pool.length), 1)[0]!);
  return out;
}
const round2 = (x: number) => Math.round(x * 100) / 100;

function ageBand(age: number): string {
  if (age < 18) return 'under-18';
  if (age < 25) return '18-24';
  if (age < 35) return '25-34';
  if (age < 45) return '35-44';
  if (age < 55) return '45-54';
  return '55-plus';
}

/** The demo person number `i` (`p-${i}`). */
export function demoProfile(i: number): Profile {
  if (i === 1001) return readmePerson();
  const r = rngFor(i, 0x51ed270b);
  const id = `p-${i}`;

  const age = pickWeighted(r, [
    [int(r, 12, 17), 8],
    [int(r, 18, 24), 22],
    [int(r, 25, 34), 32],
    [int(r, 35, 44), 22],
    [int(r, 45, 54), 11],
    [int(r, 55, 70), 5],
  ]);
  const gender = chance(r, 0.52) ? 'f' : 'm';
  const cityTier = pickWeighted(r, [
    [1, 22],
    [2, 28],
    [3, 24],
    [4, 16],
    [5, 10],
  ]);

  // Circles, shaped by age.
  const circles = new Set<string>();
  if (age <= 22 && chance(r, 0.75)) circles.add('student');
  if (age >= 26 && age <= 36 && chance(r, 0.2)) circles.add('new-parent');
  if (age >= 30 && age <= 50 && chance(r, 0.3)) circles.add('k12-parent');
  if (age >= 25 && age <= 55 && chance(r, 0.22)) circles.add('business');
  if (age <= 35 && chance(r, 0.15)) circles.add('mobile-gamer');
  const extraCircles = int(r, 1, 3);
  for (const c of sample(r, CIRCLES, extraCircles)) {
    if (c === 'student' && age > 24) continue;
    if (c === 'business' && age < 23) continue;
    if ((c === 'k12-parent' || c === 'new-parent') && age < 24) continue;
    circles.add(c);
  }

  const business = circles.has('business');
  const priceBand = business
    ? pick(r, PRICE_BANDS.slice(4))
    : pickWeighted(
        r,
        PRICE_BANDS.map((p, k) => [p, Math.max(1, 10 - k)] as const),
      );

  const tags: string[] = [`age:${ageBand(age)}`, `gender:${gender}`, `city-tier:${cityTier}`];
  for (const c of circles) tags.push(`circle:${c}`);
  for (const c of sample(r, CATEGORIES, int(r, 3, 6))) tags.push(`category:${c}`);
  for (const s of sample(r, SCENES, int(r, 2, 4))) tags.push(`scene:${s}`);
  // Most people fall in one or two of the platform's ten target groups.
  const groups = pickWeighted(r, [
    [0, 15],
    [1, 55],
    [2, 30],
  ]);
  for (const g of sample(r, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], groups)) tags.push(`group:g${g}`);
  for (const f of sample(r, FLAGS, int(r, 1, 3))) tags.push(f);
  if (chance(r, 0.04)) tags.push('status:churned');
  tags.push(chance(r, 0.7) ? 'device:android' : 'device:ios');
  tags.push(`rfm:r${int(r, 1, 5)}`, `rfm:f${int(r, 1, 5)}`);
  const interestCount = int(r, 5, 12);
  for (const t of sample(r, INTERESTS, interestCount)) tags.push(`interest:${t}`);
  // At least 20 tags: top up with interests not yet held.
  for (const t of INTERESTS) {
    if (tags.length >= 20) break;
    if (!tags.includes(`interest:${t}`)) tags.push(`interest:${t}`);
  }

  const stages: Record<string, string> = {};
  const clv: Record<string, number> = {};
  const stageWeights = [
    ['aware', 45],
    ['appeal', 30],
    ['act', 15],
    ['advocate', 10],
  ] as const;
  if (chance(r, 0.75)) stages.vivo = pickWeighted(r, stageWeights);
  const learner = circles.has('student') || circles.has('k12-parent') || circles.has('new-parent');
  if (chance(r, learner ? 0.8 : 0.3)) stages.brightpad = pickWeighted(r, stageWeights);
  if (chance(r, 0.7)) stages.joymall = pickWeighted(r, stageWeights);
  clv.vivo = Math.round(priceBand * (0.1 + r() * (business ? 1.4 : 0.8)));
  if (learner || chance(r, 0.3)) clv.brightpad = Math.round(200 + r() * (learner ? 3000 : 800));
  if (stages.joymall !== undefined) clv.joymall = Math.round(100 + r() * r() * 8000);

  const channels: Partial<Record<Channel, number>> = {};
  for (const ch of CHANNELS) if (chance(r, 0.6)) channels[ch] = round2(0.05 + r() * 0.95);

  const hours = new Set<number>();
  const main = pickWeighted(r, [
    [int(r, 7, 9), 3],
    [int(r, 11, 13), 2],
    [int(r, 18, 22), 5],
  ]);
  hours.add(main);
  const more = int(r, 1, 4);
  for (let k = 0; k < more; k++) hours.add((main + pick(r, [-2, -1, 1, 2, 3, 10, 12]) + 24) % 24);

  const attrs: Record<string, Scalar> = { price_band: priceBand, city_tier: cityTier, age };
  if (chance(r, 0.5)) attrs.orders_90d = int(r, 0, 30);

  const profile: Profile = {
    id,
    tags,
    stages,
    clv,
    attrs,
    channels,
    activeHours: [...hours].sort((a, b) => a - b),
    timezone: chance(r, 0.92) ? 'Asia/Shanghai' : pick(r, TIMEZONES),
    updatedAt: UPDATED_BASE - Math.floor(r() * 30 * DAY),
  };
  return profile;
}

/**
 * The README's example person: a high-end business buyer at `appeal` for vivo (the premium phone
 * launch), who is also the parent of a school child (the learning tablet): two campaigns, two
 * placements, one shown now and one pushed in the evening.
 */
function readmePerson(): Profile {
  return {
    id: 'p-1001',
    tags: [
      'age:35-44',
      'gender:m',
      'city-tier:1',
      'circle:business',
      'circle:k12-parent',
      'circle:traveler',
      'circle:photographer',
      'category:phone',
      'category:laptop',
      'category:camera',
      'category:wearables',
      'category:tablet',
      'scene:commute',
      'scene:office',
      'scene:travel',
      'group:g2',
      'intent:high',
      'buyer:repeat',
      'device:android',
      'rfm:r1',
      'rfm:f4',
      'interest:photography',
      'interest:gadgets',
      'interest:finance',
      'interest:travel',
      'interest:coffee',
      'interest:hiking',
    ],
    stages: { vivo: 'appeal', brightpad: 'appeal', joymall: 'aware' },
    clv: { vivo: 4800, brightpad: 1500, joymall: 1200 },
    attrs: { price_band: 6000, city_tier: 1, age: 38, orders_90d: 6 },
    channels: { display: 0.6, app_push: 0.85, email: 0.4, sms: 0.2 },
    activeHours: [8, 20, 21],
    timezone: 'Asia/Shanghai',
    updatedAt: UPDATED_BASE - 2 * DAY,
  };
}

/**
 * The aliases of demo person `i` by kind: a cookie, an advertising id, a hashed phone number
 * (sha256 hex of a fake mainland mobile number), a member id — each present for a share of people,
 * at least one for everyone. Unique across people.
 */
export function demoAliases(i: number): Record<string, string> {
  const r = rngFor(i, 0x2f6b1c3d);
  const all = i === 1001;
  const out: Record<string, string> = {};
  if (all || chance(r, 0.55)) out.idfa = uuid(r);
  if (all || chance(r, 0.5))
    out.phone = sha256Hex(`+86 138${String((i * 7919) % 100_000_000).padStart(8, '0')}`);
  if (all || chance(r, 0.4)) out.member = `M${10_000_000 + i}`;
  if (all || chance(r, 0.85) || Object.keys(out).length === 0)
    out.cookie = `ck_${i.toString(36)}_${hex(r, 16)}`;
  return out;
}

function hex(r: Rng, n: number): string {
  let s = '';
  for (let k = 0; k < n; k++) s += Math.floor(r() * 16).toString(16);
  return s;
}

function uuid(r: Rng): string {
  const h = hex(r, 32).toUpperCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
