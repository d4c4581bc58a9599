import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../src/core/rails.js';
import { LocalFleetControl } from '../src/storage/memory-control.js';

const entry = (i: number, host = `h${i}`): AuditEntry =>
  ({ at: 1_000 + i, instance: 'test', host, messageId: `m${i}`, executor: 'mock', outcome: 'restarted', reason: '' });

describe('LocalFleetControl audit', () => {
  it('keeps the newest maxAudit entries, oldest first, and reads newest first', async () => {
    const control = new LocalFleetControl(3);
    for (let i = 0; i < 5; i++) control.audit(entry(i));
    expect(control.entries.map((e) => e.messageId)).toEqual(['m2', 'm3', 'm4']);
    const read = await control.readAudit({ limit: 10 });
    expect(read.map((e) => e.messageId)).toEqual(['m4', 'm3', 'm2']);
    expect((await control.readAudit({ limit: 2 })).map((e) => e.messageId)).toEqual(['m4', 'm3']);
    expect((await control.readAudit({ limit: 10, since: 1_003 })).map((e) => e.messageId)).toEqual(['m4', 'm3']);
  });

  it('reads newest first before it is full, filtered by host', async () => {
    const control = new LocalFleetControl(10);
    for (let i = 0; i < 4; i++) control.audit(entry(i, i % 2 === 0 ? 'even' : 'odd'));
    expect((await control.readAudit({ limit: 10, host: 'even' })).map((e) => e.messageId)).toEqual(['m2', 'm0']);
  });
});
