// The lost-update test: millions of updates across many label sets, through bound
// handles, direct calls and recordBatch, with collections interleaved at random points.
// Every collection must equal an independent tally exactly and be monotone per series.
import { describe, expect, it } from 'vitest';
import type { Attributes } from '@opentelemetry/api';
import { MeterProvider, type BoundCounter, type BoundHistogram, type CheckpointSet } from '../src';
import { attrKey, OTEL_DEFAULT_BOUNDARIES, prng, recordsOf } from './helpers';

const SERIES = 200;
const OPS = 4_000_000; // each op is one counter update and one histogram update: 8M in all
const MEAN_OPS_BETWEEN_COLLECTS = 25_000;
const BOUNDS = OTEL_DEFAULT_BOUNDARIES;
const NB = BOUNDS.length + 1;

describe('no lost updates', () => {
  it(`${OPS * 2} updates over ${SERIES} label sets with collections interleaved`, async () => {
    const rand = prng(0xc0ffee);
    const provider = new MeterProvider();
    const meter = provider.getMeter('lost-update');
    const counter = meter.createCounter('lu.counter');
    const hist = meter.createHistogram('lu.hist');

    const attrs: Attributes[] = [];
    const attrsReversed: Attributes[] = [];
    const keyOf = new Map<string, number>();
    for (let i = 0; i < SERIES; i++) {
      const a: Attributes = { route: `/api/v${i % 3}/r${i % 50}`, shard: i, even: i % 2 === 0 };
      attrs.push(a);
      attrsReversed.push({ even: a.even, shard: a.shard, route: a.route });
      keyOf.set(attrKey(a), i);
    }

    // Independent tally.
    const cSum = new Float64Array(SERIES);
    const hCount = new Float64Array(SERIES);
    const hSum = new Float64Array(SERIES);
    const hMin = new Float64Array(SERIES).fill(Infinity);
    const hMax = new Float64Array(SERIES).fill(-Infinity);
    const hBuckets = new Float64Array(SERIES * NB);

    // Bound handles, some created lazily, re-bound from time to time.
    const cb: (BoundCounter | undefined)[] = new Array(SERIES).fill(undefined);
    const hb: (BoundHistogram | undefined)[] = new Array(SERIES).fill(undefined);

    // Previous collection per series, for the monotonicity check.
    const prevC = new Float64Array(SERIES);
    const prevH = new Float64Array(SERIES);
    const prevB = new Float64Array(SERIES * NB);

    let collections = 0;
    const check = (cs: CheckpointSet, final: boolean): void => {
      collections++;
      const seenC = new Uint8Array(SERIES);
      const seenH = new Uint8Array(SERIES);
      for (const r of recordsOf(cs, 'lu.counter')) {
        const i = keyOf.get(attrKey(r.attributes));
        if (i === undefined) throw new Error(`unknown series ${JSON.stringify(r.attributes)}`);
        if (seenC[i]++) throw new Error(`series ${i} reported twice`);
        if (r.aggregation.kind !== 'sum') throw new Error('not a sum');
        const s = r.aggregation.sum;
        if (s < prevC[i]) throw new Error(`counter series ${i} went down: ${prevC[i]} -> ${s}`);
        if (s !== cSum[i]) throw new Error(`counter series ${i}: collected ${s}, recorded ${cSum[i]} (collection ${collections})`);
        prevC[i] = s;
      }
      for (const r of recordsOf(cs, 'lu.hist')) {
        const i = keyOf.get(attrKey(r.attributes));
        if (i === undefined) throw new Error(`unknown series ${JSON.stringify(r.attributes)}`);
        if (seenH[i]++) throw new Error(`series ${i} reported twice`);
        if (r.aggregation.kind !== 'histogram') throw new Error('not a histogram');
        const a = r.aggregation;
        let bucketTotal = 0;
        for (let j = 0; j < NB; j++) {
          const n = a.bucketCounts[j];
          if (n < prevB[i * NB + j]) throw new Error(`histogram series ${i} bucket ${j} went down`);
          if (n !== hBuckets[i * NB + j]) throw new Error(`histogram series ${i} bucket ${j}: ${n} vs ${hBuckets[i * NB + j]}`);
          prevB[i * NB + j] = n;
          bucketTotal += n;
        }
        if (a.count < prevH[i]) throw new Error(`histogram series ${i} count went down`);
        if (a.count !== bucketTotal || a.count !== hCount[i]) {
          throw new Error(`histogram series ${i}: count ${a.count}, buckets ${bucketTotal}, recorded ${hCount[i]}`);
        }
        if (a.sum !== hSum[i]) throw new Error(`histogram series ${i}: sum ${a.sum} vs ${hSum[i]}`);
        if (hCount[i] > 0 && (a.min !== hMin[i] || a.max !== hMax[i])) throw new Error(`histogram series ${i}: min/max`);
        prevH[i] = a.count;
      }
      // Every series that has been touched is reported.
      for (let i = 0; i < SERIES; i++) {
        if (cSum[i] > 0 && !seenC[i]) throw new Error(`counter series ${i} missing`);
        if (hCount[i] > 0 && !seenH[i]) throw new Error(`histogram series ${i} missing`);
      }
      if (final) {
        let total = 0;
        for (let i = 0; i < SERIES; i++) total += hCount[i];
        expect(total).toBe(OPS);
      }
    };

    const t0 = Date.now();
    let nextCollect = Math.floor(rand() * 2 * MEAN_OPS_BETWEEN_COLLECTS);
    for (let op = 0; op < OPS; op++) {
      const i = Math.floor(rand() * SERIES);
      const r = rand();
      const cv = 1 + Math.floor(r * 8); // 1..8
      const hv = Math.floor(rand() * 24001) / 2; // 0 .. 12000 in halves: sums stay exact

      // Tally first (independent of the SDK).
      cSum[i] += cv;
      hCount[i]++;
      hSum[i] += hv;
      if (hv < hMin[i]) hMin[i] = hv;
      if (hv > hMax[i]) hMax[i] = hv;
      let j = 0;
      while (j < BOUNDS.length && !(hv <= BOUNDS[j])) j++;
      hBuckets[i * NB + j]++;

      // Then record through one of the paths.
      const path = (op * 7 + i) & 15;
      if (path < 7) {
        let c = cb[i];
        if (c === undefined) c = cb[i] = counter.bind(attrs[i]);
        let h = hb[i];
        if (h === undefined) h = hb[i] = hist.bind(attrsReversed[i]);
        c.add(cv);
        h.record(hv);
      } else if (path < 13) {
        counter.add(cv, attrs[i]);
        hist.record(hv, attrsReversed[i]);
      } else if (path < 15) {
        const a = attrs[i];
        counter.add(cv, { shard: a.shard, route: a.route, even: a.even }); // a fresh object
        hist.record(hv, { ...a });
      } else {
        meter.recordBatch(r < 0.5 ? attrs[i] : attrsReversed[i], [[counter, cv], [hist, hv]]);
      }

      // Now and then, drop a bound handle (unbind or just forget it) and bind again later.
      if (r < 0.0005) {
        if (r < 0.0003) {
          cb[i]?.unbind();
          hb[i]?.unbind();
        }
        cb[i] = undefined;
        hb[i] = undefined;
      }

      if (op === nextCollect) {
        check(await provider.collect(), false);
        nextCollect = op + 1 + Math.floor(rand() * 2 * MEAN_OPS_BETWEEN_COLLECTS);
      }
    }
    check(await provider.collect(), true);
    // And again: nothing changes when nothing is recorded.
    const idle = await provider.collect();
    check(idle, true);
    for (const rec of idle.records) expect(rec.updated).toBe(false);

    expect(collections).toBeGreaterThan(50);
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeLessThan(60_000);
    for (const h of [...cb, ...hb]) h?.unbind();
  });
});
