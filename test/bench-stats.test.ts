// The statistics bench:server's verdict reads (bench/server-interleaved.js): a
// distribution-free 95% confidence interval of a median, and the verdict taken from it.
import { describe, expect, it } from 'vitest';
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS script, typed here
const { medianCI, verdictCI } = require('../bench/server-interleaved.js') as {
  medianCI: (xs: number[], level?: number) => { lo: number; hi: number } | null;
  verdictCI: (ci: { lo: number; hi: number } | null, higherIsBetter: boolean) => string;
};

describe('bench:server statistics', () => {
  it('takes the order statistics the binomial table gives', () => {
    const xs = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];
    // n = 10: ranks 2 and 9 (P(X <= 1) = 1.07% <= 2.5% < P(X <= 2) = 5.47%)
    expect(medianCI(xs)).toEqual({ lo: 2, hi: 9 });
    // n = 6: only the extremes (P(X = 0) = 1.56%); n = 5 has no 95% interval
    expect(medianCI([6, 5, 4, 3, 2, 1])).toEqual({ lo: 1, hi: 6 });
    expect(medianCI([1, 2, 3, 4, 5])).toBeNull();
    // n = 100: ranks 40 and 61
    const h = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(medianCI(h)).toEqual({ lo: 40, hi: 61 });
  });

  it('gives a narrow interval around the middle for long runs (0.5^n underflows past n = 1074)', () => {
    for (const n of [1000, 1190, 5000]) {
      const ci = medianCI(Array.from({ length: n }, (_, i) => i + 1))!;
      // Symmetric ranks k and n + 1 - k, about 1.96 sqrt(n) apart (normal approximation).
      expect(ci.lo + ci.hi).toBe(n + 1);
      expect(Math.abs(ci.hi - ci.lo - 1.96 * Math.sqrt(n))).toBeLessThan(3);
    }
  });

  it('covers the true median in at least 95% of samples, and not far more', () => {
    let seed = 12345;
    const rand = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    // Exponential(1): skewed, median ln 2.
    const trueMedian = Math.LN2;
    let covered = 0;
    const trials = 4000;
    for (let t = 0; t < trials; t++) {
      const xs = Array.from({ length: 60 }, () => -Math.log(1 - rand()));
      const ci = medianCI(xs)!;
      if (ci.lo <= trueMedian && trueMedian <= ci.hi) covered++;
    }
    // n = 60: exact coverage of ranks 22..39 is 96.9%
    expect(covered / trials).toBeGreaterThan(0.95);
    expect(covered / trials).toBeLessThan(0.985);
  });

  it('passes only an interval wholly on the good side of the 2% line', () => {
    expect(verdictCI({ lo: 0.981, hi: 1.01 }, true)).toBe('PASS');
    expect(verdictCI({ lo: 0.975, hi: 0.99 }, true)).toBe('INCONCLUSIVE');
    expect(verdictCI({ lo: 0.95, hi: 0.979 }, true)).toBe('FAIL');
    expect(verdictCI({ lo: 0.99, hi: 1.019 }, false)).toBe('PASS');
    expect(verdictCI({ lo: 1.01, hi: 1.03 }, false)).toBe('INCONCLUSIVE');
    expect(verdictCI({ lo: 1.021, hi: 1.03 }, false)).toBe('FAIL');
    expect(verdictCI(null, true)).toBe('INCONCLUSIVE');
  });
});
