import { describe, expect, it } from 'vitest';
import { canReplace } from '../../src/instrument/blocking.js';

describe('canReplace: a property is wrapped only where assignment works', () => {
  const fn = (): void => undefined;
  it('own writable data property: yes', () => {
    expect(canReplace({ f: fn }, 'f')).toBe(true);
  });
  it('read-only (Node 26 exports), frozen, missing, getter only: no', () => {
    const ro = Object.defineProperty({}, 'f', { value: fn, writable: false, configurable: true });
    expect(canReplace(ro, 'f')).toBe(false);
    expect(canReplace(Object.freeze({ f: fn }), 'f')).toBe(false);
    expect(canReplace({}, 'f')).toBe(false);
    expect(canReplace(Object.defineProperty({}, 'f', { get: () => fn }), 'f')).toBe(false);
  });
  it('accessor with a setter: yes', () => {
    let v = fn;
    const o = Object.defineProperty({}, 'f', { get: () => v, set: (x: typeof fn) => (v = x) });
    expect(canReplace(o, 'f')).toBe(true);
  });
});
