/** The one rule for turning whatever was thrown into text (core/errors.ts). */
import { describe, expect, it } from 'vitest';
import { errorText, fullErrorText } from '../../src/core/errors.js';

const unprintable = {
  toString(): string {
    throw new Error('no');
  },
};
const messageThrows = Object.defineProperty(new Error('x'), 'message', {
  get(): string {
    throw new Error('no');
  },
});

describe('errorText', () => {
  it.each([
    ['an Error', new Error('boom'), 'boom'],
    ['a two-line message', new TypeError('bad\nsecond line'), 'bad'],
    ['a string', 'a string', 'a string'],
    ['a number', 42, '42'],
    ['undefined', undefined, 'undefined'],
    ['null', null, 'null'],
    ['an object whose toString throws', unprintable, 'an error that cannot be printed'],
    ['an object without toString', Object.create(null) as object, 'an error that cannot be printed'],
    ['an Error whose message getter throws', messageThrows, 'an error that cannot be printed'],
  ])('%s', (_what, thrown, text) => {
    expect(errorText(thrown)).toBe(text);
  });
});

describe('fullErrorText', () => {
  it('keeps every line, and never throws either', () => {
    expect(fullErrorText(new Error('first\nsecond'))).toBe('first\nsecond');
    expect(fullErrorText('one\ntwo')).toBe('one\ntwo');
    expect(fullErrorText(unprintable)).toBe('an error that cannot be printed');
  });
});
