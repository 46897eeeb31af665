// getMeter / isHotmeterMeter: hotmeter's typed Meter from the global MeterProvider.
import { metrics } from '@opentelemetry/api';
import { MeterProvider as SdkMeterProvider } from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import { getMeter, isHotmeterMeter, Meter, MeterProvider } from '../src';
import { findRecord, sumOf } from './helpers';

afterEach(() => metrics.disable());

describe('getMeter', () => {
  it('a TypeError while the global provider is not hotmeter\'s', async () => {
    expect(() => getMeter('x')).toThrow(TypeError);
    const sdk = new SdkMeterProvider();
    metrics.setGlobalMeterProvider(sdk);
    expect(() => getMeter('x')).toThrow(/not a hotmeter MeterProvider/);
    expect(isHotmeterMeter(sdk.getMeter('x'))).toBe(false);
    await sdk.shutdown();
  });

  it('hotmeter\'s Meter of the global provider: bind and recordBatch reach its instruments', async () => {
    const p = new MeterProvider();
    metrics.setGlobalMeterProvider(p);
    const m = getMeter('svc', '1');
    expect(m).toBeInstanceOf(Meter);
    expect(m).toBe(p.getMeter('svc', '1'));
    expect(isHotmeterMeter(metrics.getMeter('svc'))).toBe(true);
    const c = m.createCounter('jobs');
    c.bind({ q: 'a' }).add(2);
    m.recordBatch({ q: 'a' }, [[c, 3]]);
    expect(sumOf(findRecord(await p.collect(), 'jobs', { q: 'a' }))).toBe(5);
    await p.shutdown();
  });
});
