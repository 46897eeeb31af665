// The OTLP per-point code stays optimised from one export to the next. A collection's
// Pass (incremental.ts) and a request's Encoding (protobuf-encoder.ts) live for one
// export; when none was kept, a major GC between two exports freed their hidden class
// and V8 deoptimised the per-point code ("weak objects"), so every export of a server
// that collects garbage in between ran it unoptimised: a 20,000-point delta flush took
// 25 ms instead of 15 (bench/otlp.js). Checked structurally through V8's own trace, not
// by timing: after warm-up, no GC deoptimises that code.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './fixtures/worker-helpers';

const FIXTURE = path.join(__dirname, 'fixtures', 'otlp-optimised.js');
const ROUNDS = 10;
// The one-time settling of hidden classes (a map deprecated as field types generalise)
// ends within the first rounds; from this one on nothing may be deoptimised.
const STEADY_FROM = 6;
// Pass's per-record methods and Encoding's per-point ones.
const PER_POINT = ['run', 'changed', 'unchanged', 'use', 'push', 'hr', 'entry', 'numberPointSize', 'histogramPointSize', 'writeNumberPoint', 'writeHistogramPoint', 'measure', 'write'];

function weakDeopts(temporality: 'delta' | 'cumulative'): { byRound: Map<number, string[]>; rounds: number; traced: number } {
  const r = spawnSync(process.execPath, ['--expose-gc', '--trace-deopt', FIXTURE, temporality, String(ROUNDS)], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120_000 });
  expect(r.status, r.stderr).toBe(0);
  const byRound = new Map<number, string[]>();
  let round = -1;
  let rounds = 0;
  let traced = 0;
  for (const line of r.stdout.split('\n')) {
    const m = /^ROUND (\d+)$/.exec(line);
    if (m) {
      round = Number(m[1]);
      rounds++;
      continue;
    }
    const d = /marking dependent code .*<SharedFunctionInfo ([\w$]*)>.*reason: (.*)\]/.exec(line);
    if (d === null) continue;
    traced++;
    if (d[2] !== 'weak objects' || !PER_POINT.includes(d[1])) continue;
    byRound.set(round, [...(byRound.get(round) ?? []), d[1]]);
  }
  return { byRound, rounds, traced };
}

describe('OTLP per-point code across exports', () => {
  it('needs dist/', () => {
    expect(fs.existsSync(path.join(ROOT, 'dist', 'cjs', 'index.js'))).toBe(true);
  });

  for (const temporality of ['delta', 'cumulative'] as const) {
    it(`is not deoptimised by the GC between ${temporality} exports`, () => {
      const { byRound, rounds, traced } = weakDeopts(temporality);
      expect(rounds).toBe(ROUNDS);
      // The trace is read: V8 reports deoptimisations of other code (warm-up) in it.
      expect(traced).toBeGreaterThan(0);
      const steady = [...byRound].filter(([round]) => round >= STEADY_FROM);
      expect(steady).toEqual([]);
    }, 180_000);
  }
});
