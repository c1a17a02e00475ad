import { describe, expect, it } from 'vitest';
import { parseRuleSetText } from './parse.js';

const NOW = Date.parse('2026-11-24T04:00:00Z');
const TEXT = `funnel: [aware, act]
segments:
  - id: used
    when: { tag: a }
  - id: helper
    when: { tag: b }
  - id: refers
    when: { segment: helper }
  - id: lonely
    when: { tag: c }
sellingPoints:
  used: [camera, chip]
  lonely: [price]
campaigns:
  - id: live
    brand: b
    segments: [used, refers]
    stages: [aware, act]
    creatives:
      - { id: k, message: brand, stages: [aware], sellingPoints: [camera] }
  - id: over
    brand: b
    flight: { start: "2026-11-01", end: "2026-11-11" }
    timing: { timezone: Asia/Shanghai }
    creatives:
      - { id: k2, message: brand }
`;

describe('ruleSetWarnings', () => {
  it('finds what can never take effect, each at its line, and refuses nothing', () => {
    const r = parseRuleSetText(TEXT, 'yaml', { warningsAt: NOW });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.warnings?.map(({ code, path, line }) => ({ code, path, line }))).toEqual([
      { code: 'unused_segment', path: 'segments[3]', line: 9 },
      { code: 'unillustrated_selling_point', path: 'sellingPoints.used[1]', line: 12 },
      { code: 'unused_selling_points', path: 'sellingPoints.lonely', line: 13 },
      { code: 'stage_without_creative', path: 'campaigns[0].stages', line: 18 },
      { code: 'flight_ended', path: 'campaigns[1].flight.end', line: 23 },
    ]);
    // The flight's last day counts whole: on the 11th in Shanghai it has not ended yet.
    const during = parseRuleSetText(TEXT, 'yaml', { warningsAt: Date.parse('2026-11-11T15:00:00Z') });
    expect(during.ok && during.warnings?.some((w) => w.code === 'flight_ended')).toBe(false);
    // Not asked for: none computed.
    const plain = parseRuleSetText(TEXT, 'yaml');
    expect(plain.ok && plain.warnings).toBeUndefined();
  });

  it('places warnings in JSON text too, and finds none in a tidy rule set', () => {
    const json = JSON.stringify({
      funnel: ['aware'],
      segments: [{ id: 's', when: { tag: 'a' } }],
      campaigns: [{ id: 'c', brand: 'b', segments: ['s'], creatives: [{ id: 'k', message: 'brand' }] }],
    });
    const tidy = parseRuleSetText(json, 'json', { warningsAt: NOW });
    expect(tidy.ok && tidy.warnings).toEqual([]);
    const untidy = parseRuleSetText(
      JSON.stringify(
        { ...JSON.parse(json), segments: [...JSON.parse(json).segments, { id: 'x', when: { tag: 'b' } }] },
        null,
        1,
      ),
      'json',
      { warningsAt: NOW },
    );
    expect(untidy.ok && untidy.warnings?.[0]).toMatchObject({ code: 'unused_segment', path: 'segments[1]' });
    expect(untidy.ok && untidy.warnings?.[0]?.line).toBeGreaterThan(1);
  });
});
