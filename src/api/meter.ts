// Meter: creates instruments for one instrumentation scope. Instruments with the same
// identity (name case-insensitively, kind, unit, description, value type) share storage.
import {
  BatchObservableCallback,
  Meter as ApiMeter,
  MetricOptions,
  Observable,
} from '@opentelemetry/api';
import type { Attributes } from '@opentelemetry/api';
import { InstrumentationScope, InstrumentKind } from '../sdk/descriptor';
import type { RecordStore } from '../sdk/record-store';
import { describeValue, warnLimited } from '../sdk/diag';
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
  MultiCounter,
  MultiGauge,
  MultiHistogram,
  MultiUpDownCounter,
  ObservableCounter,
  ObservableGauge,
  ObservableInstrument,
  ObservableUpDownCounter,
  UpDownCounter,
} from './instruments';

/** What a Meter needs from its provider. */
export interface MeterHost {
  storeFor(scope: InstrumentationScope, kind: InstrumentKind, name: string, options?: MetricOptions): RecordStore<BoundHandle>;
  /** Every stream's store of the instrument (at least one). */
  streamsFor?(scope: InstrumentationScope, kind: InstrumentKind, name: string, options?: MetricOptions): RecordStore<BoundHandle>[];
  registerObservable(o: ObservableInstrument): void;
  registerBatch(reg: BatchRegistration): void;
  unregisterBatch(callback: BatchObservableCallback, observables: Observable[]): void;
}

type Measurement = readonly [Counter | UpDownCounter | Histogram | Gauge, number];

/**
 * Creates instruments for one instrumentation scope: `provider.getMeter(name, version)`.
 * Besides the `@opentelemetry/api` Meter it records several instruments under one label
 * set ({@link Meter.recordBatch}), and its synchronous instruments have `bind()`.
 */
export class Meter implements ApiMeter {
  /** @internal */
  constructor(
    private readonly host: MeterHost,
    readonly scope: InstrumentationScope,
  ) {}

  /**
   * The instrument's store. Options that throw when read (a Proxy, a throwing getter)
   * are ignored with a diagnostic: creating an instrument never throws.
   */
  private storesOf(kind: InstrumentKind, name: string, options?: MetricOptions): RecordStore<BoundHandle>[] {
    const h = this.host;
    const get = (o: MetricOptions | undefined): RecordStore<BoundHandle>[] =>
      h.streamsFor !== undefined ? h.streamsFor(this.scope, kind, name, o) : [h.storeFor(this.scope, kind, name, o)];
    try {
      return get(options);
    } catch (e) {
      const label = describeValue(name).slice(0, 300);
      warnLimited(`options:${label}`, `reading the options of instrument ${label} threw (${describeValue(e)}); defaults used`);
      return get({});
    }
  }

  createCounter(name: string, options?: MetricOptions): Counter {
    const ss = this.storesOf(InstrumentKind.COUNTER, name, options) as never[];
    if (ss.length > 1) return new MultiCounter(ss.map((s) => new Counter(s)));
    const s = ss[0];
    return (s as RecordStore<BoundHandle>).disabled ? new DisabledCounter(s) : new Counter(s);
  }

  createUpDownCounter(name: string, options?: MetricOptions): UpDownCounter {
    const ss = this.storesOf(InstrumentKind.UP_DOWN_COUNTER, name, options) as never[];
    if (ss.length > 1) return new MultiUpDownCounter(ss.map((s) => new UpDownCounter(s)));
    const s = ss[0];
    return (s as RecordStore<BoundHandle>).disabled ? new DisabledUpDownCounter(s) : new UpDownCounter(s);
  }

  createHistogram(name: string, options?: MetricOptions): Histogram {
    const ss = this.storesOf(InstrumentKind.HISTOGRAM, name, options) as never[];
    if (ss.length > 1) return new MultiHistogram(ss.map((s) => new Histogram(s)));
    const s = ss[0];
    return (s as RecordStore<BoundHandle>).disabled ? new DisabledHistogram(s) : new Histogram(s);
  }

  createGauge(name: string, options?: MetricOptions): Gauge {
    const ss = this.storesOf(InstrumentKind.GAUGE, name, options) as never[];
    if (ss.length > 1) return new MultiGauge(ss.map((s) => new Gauge(s)));
    const s = ss[0];
    return (s as RecordStore<BoundHandle>).disabled ? new DisabledGauge(s) : new Gauge(s);
  }

  createObservableCounter(name: string, options?: MetricOptions): ObservableCounter {
    const ss = this.storesOf(InstrumentKind.OBSERVABLE_COUNTER, name, options) as never[];
    const o = new ObservableCounter(ss[0], ss);
    this.host.registerObservable(o);
    return o;
  }

  createObservableUpDownCounter(name: string, options?: MetricOptions): ObservableUpDownCounter {
    const ss = this.storesOf(InstrumentKind.OBSERVABLE_UP_DOWN_COUNTER, name, options) as never[];
    const o = new ObservableUpDownCounter(ss[0], ss);
    this.host.registerObservable(o);
    return o;
  }

  createObservableGauge(name: string, options?: MetricOptions): ObservableGauge {
    const ss = this.storesOf(InstrumentKind.OBSERVABLE_GAUGE, name, options) as never[];
    const o = new ObservableGauge(ss[0], ss);
    this.host.registerObservable(o);
    return o;
  }

  addBatchObservableCallback(callback: BatchObservableCallback, observables: Observable[]): void {
    let set: Set<Observable>;
    try {
      if (typeof callback !== 'function' || !Array.isArray(observables)) {
        warnLimited('batch-cb', 'addBatchObservableCallback needs a function and an array of observables');
        return;
      }
      set = new Set(observables);
    } catch (e) {
      warnLimited('batch-cb', `addBatchObservableCallback: reading the observables threw (${describeValue(e)}); ignored`);
      return;
    }
    this.host.registerBatch({ callback, observables: set });
  }

  removeBatchObservableCallback(callback: BatchObservableCallback, observables: Observable[]): void {
    let list: Observable[];
    try {
      list = Array.isArray(observables) ? [...observables] : [];
    } catch (e) {
      warnLimited('batch-cb', `removeBatchObservableCallback: reading the observables threw (${describeValue(e)}); ignored`);
      return;
    }
    this.host.unregisterBatch(callback, list);
  }

  /**
   * Records several measurements under one attribute set (the seed's RecordBatch).
   * Never throws; bad entries are dropped with a diagnostic.
   */
  recordBatch(attributes: Attributes | undefined, measurements: readonly Measurement[]): void {
    // A Proxy (revoked, or with throwing traps) as the list, an entry or an instrument
    // throws from Array.isArray, .length, [i] or instanceof: such parts are dropped too.
    let n: number;
    try {
      if (!Array.isArray(measurements)) {
        warnLimited('record-batch', 'recordBatch needs an array of [instrument, value] pairs');
        return;
      }
      n = measurements.length;
    } catch (e) {
      warnLimited('record-batch', `recordBatch: reading the measurements threw (${describeValue(e)}); dropped`);
      return;
    }
    for (let i = 0; i < n; i++) {
      try {
        const m = measurements[i];
        const inst = Array.isArray(m) ? m[0] : undefined;
        if (inst instanceof Counter || inst instanceof UpDownCounter) inst.add(m[1], attributes);
        else if (inst instanceof Histogram || inst instanceof Gauge) inst.record(m[1], attributes);
        else warnLimited('record-batch-entry', 'recordBatch: entry is not [synchronous instrument, value]; dropped');
      } catch (e) {
        warnLimited('record-batch-entry', `recordBatch: reading an entry threw (${describeValue(e)}); dropped`);
      }
    }
  }
}
