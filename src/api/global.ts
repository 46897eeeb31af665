// Typed access to hotmeter's Meter from code that has only the global MeterProvider
// (`metrics.setGlobalMeterProvider(provider)`): bind, recordBatch and remove without a cast.
import { metrics } from '@opentelemetry/api';
import type { Meter as ApiMeter, MeterOptions } from '@opentelemetry/api';
import { Meter } from './meter';

/** Whether `meter` is hotmeter's Meter (so `bind`, `recordBatch` and `remove` are there). */
export function isHotmeterMeter(meter: ApiMeter | null | undefined): meter is Meter {
  return meter instanceof Meter;
}

/**
 * hotmeter's Meter for an instrumentation scope from the global MeterProvider, typed with
 * hotmeter's extensions. Throws a TypeError when the global MeterProvider is not a hotmeter
 * provider (none registered yet, or another SDK's).
 */
export function getMeter(name: string, version?: string, options?: MeterOptions): Meter {
  const m = metrics.getMeterProvider().getMeter(name, version, options);
  if (!isHotmeterMeter(m)) {
    throw new TypeError('hotmeter: the global MeterProvider is not a hotmeter MeterProvider (metrics.setGlobalMeterProvider(new MeterProvider(...)) first)');
  }
  return m;
}
