// Instrument creation never throws: pieces of an instrument's identity longer than the
// native registry takes (64 KiB of UTF-8) give a no-op instrument and a diagnostic.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MeterProvider } from '../src';
import { CapturingLogger, installLogger, recordsOf, uninstallLogger } from './helpers';

let log: CapturingLogger;
beforeEach(() => {
  log = installLogger();
});
afterEach(() => uninstallLogger());

const LONG = 'x'.repeat(70 * 1024);
// 22k characters of 3 UTF-8 bytes: under 64 Ki characters, over 64 KiB.
const LONG_UTF8 = '✓'.repeat(22 * 1024);

type Piece = 'meter name' | 'meter version' | 'schemaUrl' | 'instrument name' | 'description' | 'unit' | 'description (UTF-8 bytes)';
const PIECES: Piece[] = ['meter name', 'meter version', 'schemaUrl', 'instrument name', 'description', 'unit', 'description (UTF-8 bytes)'];
const FACTORIES = [
  'createCounter',
  'createUpDownCounter',
  'createHistogram',
  'createGauge',
  'createObservableCounter',
  'createObservableUpDownCounter',
  'createObservableGauge',
] as const;

describe('over-long identity pieces', () => {
  for (const piece of PIECES) {
    it(`${piece}: no factory throws; each gives a no-op instrument (an invalid unit: ignored) and a diagnostic`, async () => {
      const p = new MeterProvider();
      const meter =
        piece === 'meter name' ? p.getMeter(LONG) :
        piece === 'meter version' ? p.getMeter('m', LONG) :
        piece === 'schemaUrl' ? p.getMeter('m', '1', { schemaUrl: LONG }) :
        p.getMeter('m');
      const name = piece === 'instrument name' ? LONG : 'inst';
      const options =
        piece === 'description' ? { description: LONG } :
        piece === 'description (UTF-8 bytes)' ? { description: LONG_UTF8 } :
        piece === 'unit' ? { unit: LONG } :
        {};
      for (const f of FACTORIES) {
        const inst = (meter[f] as (n: string, o: object) => unknown).call(meter, `${name}${f}`, options) as Record<string, unknown>;
        expect(inst).toBeDefined();
        if (typeof inst.add === 'function') (inst as { add(v: number, a?: object): void }).add(1, { k: 'v' });
        if (typeof inst.record === 'function') (inst as { record(v: number, a?: object): void }).record(1, { k: 'v' });
        if (typeof inst.bind === 'function') (inst as { bind(a: object): { unbind(): void } }).bind({ k: 'v' }).unbind();
        if (typeof inst.addCallback === 'function') (inst as { addCallback(cb: (r: { observe(v: number): void }) => void): void }).addCallback((r) => r.observe(1));
      }
      const cs = await p.collect();
      if (piece === 'unit') {
        // An invalid unit is ignored (its own diagnostic); the instruments still record.
        for (const f of FACTORIES) expect(recordsOf(cs, `inst${f}`).length).toBe(1);
        expect(log.warned('invalid unit')).toBe(true);
      } else {
        expect(cs.size).toBe(0);
        expect(log.warnings.length).toBeGreaterThan(0);
      }
      await p.shutdown();
    });
  }

  it('a long description under the limit still registers', async () => {
    const p = new MeterProvider();
    const c = p.getMeter('m').createCounter('c', { description: 'd'.repeat(32 * 1024) });
    c.add(2);
    expect(recordsOf(await p.collect(), 'c').length).toBe(1);
    await p.shutdown();
  });
});
