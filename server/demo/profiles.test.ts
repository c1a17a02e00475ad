import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { compileRuleSet, hashString, mixHash } from '../../rules/compile.js';
import { decide } from '../../rules/decide.js';
import type { RuleSet } from '../../rules/types.js';
import { DEMO_RULESET } from '../config.js';
import { demoAliases, demoProfile } from './profiles.js';

const demo = () => compileRuleSet(parse(readFileSync(DEMO_RULESET, 'utf8')) as RuleSet);
/** 24 November 2026, noon in Shanghai: the README's example time. */
const README_NOW = Date.parse('2026-11-24T04:00:00.000Z');

function inHoldout(pid: string, campaign: string, share: number): boolean {
  return mixHash(hashString(pid), hashString(campaign) ^ 0x5bd1e995) / 2 ** 32 < share;
}

describe('demo profiles', () => {
  it('are deterministic', () => {
    for (const i of [0, 1, 7, 1001, 9999, 123_456]) {
      expect(demoProfile(i)).toEqual(demoProfile(i));
      expect(demoAliases(i)).toEqual(demoAliases(i));
      expect(demoProfile(i).id).toBe(`p-${i}`);
    }
    expect(demoProfile(1)).not.toEqual(demoProfile(2));
  });

  it('look like people: 20-40 tags, attributes, stages, channels, active hours', () => {
    const zones = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      const p = demoProfile(i);
      expect(p.tags.length).toBeGreaterThanOrEqual(20);
      expect(p.tags.length).toBeLessThanOrEqual(40);
      expect(new Set(p.tags).size).toBe(p.tags.length);
      expect(typeof p.attrs?.price_band).toBe('number');
      expect([1, 2, 3, 4, 5]).toContain(p.attrs?.city_tier);
      expect(p.tags).toContain(`city-tier:${p.attrs?.city_tier}`);
      for (const stage of Object.values(p.stages ?? {}))
        expect(['aware', 'appeal', 'act', 'advocate']).toContain(stage);
      for (const a of Object.values(p.channels ?? {})) expect(a).toBeGreaterThan(0);
      expect(p.activeHours?.length).toBeGreaterThan(0);
      for (const h of p.activeHours ?? []) expect(h >= 0 && h <= 23 && Number.isInteger(h)).toBe(true);
      zones.set(p.timezone ?? '', (zones.get(p.timezone ?? '') ?? 0) + 1);
    }
    expect((zones.get('Asia/Shanghai') ?? 0) / 2000).toBeGreaterThan(0.85);
    expect(zones.size).toBeGreaterThan(1);
  });

  it('are diverse: tags spread, most people in some demo segment, every segment populated', () => {
    const rs = demo();
    const n = 10_000;
    const tagCounts = new Map<string, number>();
    const segmentCounts = new Map<string, number>();
    let matched = 0;
    for (let i = 0; i < n; i++) {
      const p = demoProfile(i);
      for (const t of p.tags) tagCounts.set(t, (tagCounts.get(t) ?? 0) + 1);
      const segments = rs.matchSegments(p);
      if (segments.length > 0) matched++;
      for (const s of segments) segmentCounts.set(s, (segmentCounts.get(s) ?? 0) + 1);
    }
    expect(tagCounts.size).toBeGreaterThan(100);
    // No tag (beyond the two genders and devices) on nearly everyone.
    const common = [...tagCounts].filter(([, c]) => c > 0.6 * n).map(([t]) => t);
    expect(common.length).toBeLessThanOrEqual(2);
    expect(matched / n).toBeGreaterThan(0.5);
    for (const seg of rs.segments) expect(segmentCounts.get(seg.id) ?? 0, seg.id).toBeGreaterThan(n * 0.005);
    // But not everyone is in the premium crowd.
    expect((segmentCounts.get('highend-business') ?? 0) / n).toBeLessThan(0.3);
  });

  it('have unique aliases of the expected shapes', () => {
    const seen = new Map<string, number>();
    for (let i = 0; i < 5000; i++) {
      const aliases = demoAliases(i);
      expect(Object.keys(aliases).length).toBeGreaterThan(0);
      for (const [kind, value] of Object.entries(aliases)) {
        expect(['idfa', 'cookie', 'phone', 'member']).toContain(kind);
        const key = `${kind}:${value}`;
        expect(seen.has(key), key).toBe(false);
        seen.set(key, i);
      }
      if (aliases.phone !== undefined) expect(aliases.phone).toMatch(/^[0-9a-f]{64}$/);
      if (aliases.idfa !== undefined)
        expect(aliases.idfa).toMatch(/^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[0-9A-F]{4}-[0-9A-F]{12}$/);
    }
  });

  it("make p-1001 the README's high-end business buyer, with a real decision", () => {
    const p = demoProfile(1001);
    expect(p.tags).toContain('circle:business');
    expect(p.tags).not.toContain('status:churned');
    expect(p.attrs?.price_band).toBeGreaterThanOrEqual(4000);
    expect(p.stages?.vivo).toBe('appeal');
    expect(p.channels?.display).toBeGreaterThan(0);
    expect(p.channels?.app_push).toBeGreaterThan(0);
    expect(p.activeHours?.some((h) => h >= 18 && h <= 21)).toBe(true);
    expect(inHoldout('p-1001', 'x90-launch', 0.05)).toBe(false);
    expect(inHoldout('p-1001', 'brightpad-back-to-school', 0.1)).toBe(false);
    expect(Object.keys(demoAliases(1001)).sort()).toEqual(['cookie', 'idfa', 'member', 'phone']);

    const rs = demo();
    expect(rs.matchSegments(p)).toContain('highend-business');
    const result = decide(
      rs,
      p,
      {},
      {
        placements: [
          { id: 'home-banner', channels: ['display'], formats: ['banner-300x250'] },
          { id: 'daily-push', channels: ['app_push', 'sms', 'email'] },
        ],
      },
      README_NOW,
    );
    expect(result.decisions[0]).toMatchObject({
      placement: 'home-banner',
      campaign: 'x90-launch',
      creative: 'x90-camera-hero',
      segment: 'highend-business',
      stage: 'appeal',
      channel: 'display',
      variant: 'treatment',
    });
    // Also a school parent: the learning tablet is pushed at the next evening active hour.
    expect(result.decisions[1]).toMatchObject({
      placement: 'daily-push',
      campaign: 'brightpad-back-to-school',
      segment: 'k12-parent',
      channel: 'app_push',
      sendAt: '2026-11-24T12:00:00.000Z',
      variant: 'treatment',
    });
  });
});
