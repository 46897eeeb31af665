// Meter: creates instruments for one instrumentation scope. Instruments with the same
// identity (name case-insensitively, kind, unit, description, value type) share storage.
import {
  BatchObservableCallback,
  Meter as ApiMeter,
  MetricOptions,
  Observable,
  ValueType,
} from '@opentelemetry/api';
import type { Attributes } from '@opentelemetry/api';
import { InstrumentationScope, InstrumentKind } from '../sdk/descriptor';
import type { RecordStore } from '../sdk/record-store';
import { warnLimited } from '../sdk/diag';
import type { BoundHandle } from './handles';
import {
  BatchRegistration,
  Counter,
  DisabledCounter,
  DisabledGauge,
  DisabledHistogram,
  DisabledUpDownCounter,
  Gauge,
  Histogram,
  ObservableCounter,
  ObservableGauge,
  ObservableInstrument,
  ObservableUpDownCounter,
  UpDownCounter,
} from './instruments';

/** What a Meter needs from its provider. */
export interface MeterHost {
  storeFor(scope: InstrumentationScope, kind: InstrumentKind, name: string, options?: MetricOptions): RecordStore<BoundHandle>;
  registerObservable(o: ObservableInstrument): void;
  registerBatch(reg: BatchRegistration): void;
  unregisterBatch(callback: BatchObservableCallback, observables: Observable[]): void;
}

type Measurement = readonly [Counter | UpDownCounter | Histogram | Gauge, number];

export class Meter implements ApiMeter {
  /** @internal */
  constructor(
    private readonly host: MeterHost,
    readonly scope: InstrumentationScope,
  ) {}

  createCounter(name: string, options?: MetricOptions): Counter {
    const s = this.host.storeFor(this.scope, InstrumentKind.COUNTER, name, options) as never;
    return (s as RecordStore<BoundHandle>).disabled ? new DisabledCounter(s) : new Counter(s);
  }

  createUpDownCounter(name: string, options?: MetricOptions): UpDownCounter {
    const s = this.host.storeFor(this.scope, InstrumentKind.UP_DOWN_COUNTER, name, options) as never;
    return (s as RecordStore<BoundHandle>).disabled ? new DisabledUpDownCounter(s) : new UpDownCounter(s);
  }

  createHistogram(name: string, options?: MetricOptions): Histogram {
    const s = this.host.storeFor(this.scope, InstrumentKind.HISTOGRAM, name, options) as never;
    return (s as RecordStore<BoundHandle>).disabled ? new DisabledHistogram(s) : new Histogram(s);
  }

  createGauge(name: string, options?: MetricOptions): Gauge {
    const s = this.host.storeFor(this.scope, InstrumentKind.GAUGE, name, options) as never;
    return (s as RecordStore<BoundHandle>).disabled ? new DisabledGauge(s) : new Gauge(s);
  }

  createObservableCounter(name: string, options?: MetricOptions): ObservableCounter {
    const o = new ObservableCounter(this.host.storeFor(this.scope, InstrumentKind.OBSERVABLE_COUNTER, name, options) as never);
    this.host.registerObservable(o);
    return o;
  }

  createObservableUpDownCounter(name: string, options?: MetricOptions): ObservableUpDownCounter {
    const o = new ObservableUpDownCounter(
      this.host.storeFor(this.scope, InstrumentKind.OBSERVABLE_UP_DOWN_COUNTER, name, options) as never,
    );
    this.host.registerObservable(o);
    return o;
  }

  createObservableGauge(name: string, options?: MetricOptions): ObservableGauge {
    const o = new ObservableGauge(this.host.storeFor(this.scope, InstrumentKind.OBSERVABLE_GAUGE, name, options) as never);
    this.host.registerObservable(o);
    return o;
  }

  addBatchObservableCallback(callback: BatchObservableCallback, observables: Observable[]): void {
    if (typeof callback !== 'function' || !Array.isArray(observables)) {
      warnLimited('batch-cb', 'addBatchObservableCallback needs a function and an array of observables');
      return;
    }
    this.host.registerBatch({ callback, observables: new Set(observables) });
  }

  removeBatchObservableCallback(callback: BatchObservableCallback, observables: Observable[]): void {
    this.host.unregisterBatch(callback, Array.isArray(observables) ? observables : []);
  }

  /**
   * Records several measurements under one attribute set (the seed's RecordBatch).
   * Never throws; bad entries are dropped with a diagnostic.
   */
  recordBatch(attributes: Attributes | undefined, measurements: readonly Measurement[]): void {
    if (!Array.isArray(measurements)) {
      warnLimited('record-batch', 'recordBatch needs an array of [instrument, value] pairs');
      return;
    }
    for (let i = 0; i < measurements.length; i++) {
      const m = measurements[i];
      const inst = Array.isArray(m) ? m[0] : undefined;
      if (inst instanceof Counter || inst instanceof UpDownCounter) inst.add(m[1], attributes);
      else if (inst instanceof Histogram || inst instanceof Gauge) inst.record(m[1], attributes);
      else warnLimited('record-batch-entry', 'recordBatch: entry is not [synchronous instrument, value]; dropped');
    }
  }
}
