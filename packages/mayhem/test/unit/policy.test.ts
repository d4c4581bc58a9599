/** The safety rails' rules: host patterns and restart windows (pure; explicit instants, no clock). */
import { describe, expect, it } from 'vitest';
import { globToRegExp, HostFilter, PolicyError, RestartWindow } from '../../src/core/policy.js';

describe('host patterns', () => {
  it('globs match whole hostnames, case-insensitively; dots are literal', () => {
    expect(globToRegExp('web-*.example.net').test('web-12.example.net')).toBe(true);
    expect(globToRegExp('web-*.example.net').test('WEB-12.EXAMPLE.NET')).toBe(true);
    expect(globToRegExp('web-*.example.net').test('web-12.exampleXnet')).toBe(false);
    expect(globToRegExp('db-?.example.net').test('db-10.example.net')).toBe(false);
    expect(globToRegExp('db-?.example.net').test('db-1.example.net')).toBe(true);
  });

  it('deny wins over allow; no allow-list means every host', () => {
    const f = new HostFilter(['*.example.net'], ['db-*']);
    expect(f.refusal('web-1.example.net')).toBeUndefined();
    expect(f.refusal('db-1.example.net')).toBe('denied by policy: db-1.example.net matches --deny-hosts db-*');
    expect(f.refusal('web-1.other.org')).toBe('denied by policy: web-1.other.org matches no --allow-hosts pattern');
    expect(new HostFilter([], ['db-*']).refusal('anything.example.net')).toBeUndefined();
    expect(new HostFilter([], []).open).toBe(true);
  });

  it('rejects an empty or spaced pattern in one line', () => {
    expect(() => new HostFilter(['web *'], [])).toThrow(PolicyError);
    expect(() => new HostFilter([], [''])).toThrow(/invalid --deny-hosts pattern ""/);
  });
});

const at = (iso: string): number => Date.parse(iso);

describe('restart windows', () => {
  it('Mon-Fri 09:00-17:00 Europe/Berlin, in Berlin time (UTC+1 in winter, +2 in summer)', () => {
    const w = RestartWindow.parse('Mon-Fri 09:00-17:00 Europe/Berlin');
    expect(w.isOpen(at('2026-11-30T07:59:00Z'))).toBe(false); // Monday 08:59 in Berlin
    expect(w.isOpen(at('2026-11-30T08:00:00Z'))).toBe(true); // 09:00
    expect(w.isOpen(at('2026-11-30T15:59:00Z'))).toBe(true); // 16:59
    expect(w.isOpen(at('2026-11-30T16:00:00Z'))).toBe(false); // 17:00: the end is not in it
    expect(w.isOpen(at('2026-12-05T10:00:00Z'))).toBe(false); // Saturday
    expect(w.isOpen(at('2026-07-06T07:30:00Z'))).toBe(true); // a summer Monday, 09:30 CEST
  });

  it('says how long until it opens: over a night and over a weekend', () => {
    const w = RestartWindow.parse('Mon-Fri 09:00-17:00 Europe/Berlin');
    expect(w.msUntilOpen(at('2026-11-30T10:00:00Z'))).toBe(0);
    expect(w.msUntilOpen(at('2026-11-30T16:30:00Z'))).toBe(at('2026-12-01T08:00:00Z') - at('2026-11-30T16:30:00Z'));
    expect(w.msUntilOpen(at('2026-12-04T17:00:30Z'))).toBe(at('2026-12-07T08:00:00Z') - at('2026-12-04T17:00:30Z'));
  });

  it('spans across midnight belong to the day they start on; several spans join with ;', () => {
    const w = RestartWindow.parse('Mon-Thu 22:00-02:00 UTC; Sat,Sun 10:00-12:00');
    expect(w.isOpen(at('2026-11-30T23:00:00Z'))).toBe(true); // Monday night
    expect(w.isOpen(at('2026-12-01T01:59:00Z'))).toBe(true); // small hours of Tuesday
    expect(w.isOpen(at('2026-12-04T01:00:00Z'))).toBe(true); // Friday 01:00, after Thursday night
    expect(w.isOpen(at('2026-12-05T01:00:00Z'))).toBe(false); // Saturday 01:00: Friday has no night span
    expect(w.isOpen(at('2026-12-06T11:00:00Z'))).toBe(true); // Sunday late morning
    expect(RestartWindow.parse('daily 00:00-24:00').isOpen(at('2026-12-06T11:00:00Z'))).toBe(true);
  });

  it('rejects what it cannot read, in one line naming the setting', () => {
    for (const bad of [
      'Mon-Fri',
      'Mon-Fri 9-17',
      'Someday 09:00-17:00',
      'Mon-Fri 09:00-25:00',
      'Mon-Fri 09:00-09:00',
      'Mon-Fri 09:00-17:00 Mars/Base',
      'Mon 09:00-10:00 UTC; Tue 09:00-10:00 Europe/Berlin',
    ]) {
      expect(() => RestartWindow.parse(bad), bad).toThrow(/^invalid --window /);
    }
  });
});
