// The exposition read by real peers (installed by CI: .ci/run):
//   - `promtool check metrics` (Prometheus 2.x): the text format lints clean in every
//     configuration. promtool only parses the text format 0.0.4 (prometheus/prometheus#8932):
//     on OpenMetrics it can only check what that parser understands, so the test pins down
//     exactly which findings that leaves and that there is nothing else;
//   - the Debian python3-prometheus-client: its text parser and its strict OpenMetrics
//     parser read every sample back, with its name, labels (hostile values included) and value.
import { afterEach, describe, expect, it } from 'vitest';
import { MeterProvider, PrometheusExporter } from '../src';
import { HOSTILE, MERGED, OM, parseExposition, promtool, pythonParse, recordCollisions, recordEverything, sampleKey, VIEWS } from './prometheus-helpers';

const providers: MeterProvider[] = [];
afterEach(async () => {
  await Promise.all(providers.splice(0).map((p) => p.shutdown()));
});

async function render(openMetrics: boolean, opts: ConstructorParameters<typeof PrometheusExporter>[0] = {}, baseUnits = true): Promise<string> {
  const exporter = new PrometheusExporter({ preventServerStart: true, ...opts });
  const p = new MeterProvider({ readers: [exporter], views: VIEWS, resource: { attributes: { 'service.name': 'peers', 'deployment.env': 'ci "x"' } } });
  providers.push(p);
  recordEverything(p, baseUnits);
  return exporter.render(openMetrics ? OM : 'text/plain; version=0.0.4');
}

const CONFIGS: [string, ConstructorParameters<typeof PrometheusExporter>[0]][] = [
  ['defaults', {}],
  ['without scope labels', { withoutScopeInfo: true }],
  ['without target_info', { withoutTargetInfo: true }],
  ['custom quantiles', { summaryQuantiles: [0, 0.5, 1] }],
];

describe('promtool check metrics', () => {
  for (const [name, opts] of CONFIGS) {
    it(`text format 0.0.4 lints clean (${name})`, async () => {
      const text = await render(false, opts);
      const r = promtool(text);
      expect(r.output).toBe('');
      expect(r.status).toBe(0);
    });
  }

  it('OpenMetrics: only what a text-format parser cannot read (counter families without _total, info type, \\" in HELP)', async () => {
    // OpenMetrics escapes '"' in HELP; the text format does not know that escape.
    const unescapeHelp = (t: string): string => t.replace(/^# HELP (\S+) (.*)$/gm, (_l, n: string, h: string) => `# HELP ${n} ${h.replace(/\\"/g, '"')}`);
    const raw = await render(true, { withoutTargetInfo: true });
    expect(promtool(raw).output).toMatch(/^error while linting: text format parsing error in line \d+: invalid escape sequence '\\"'$/);
    const text = unescapeHelp(raw);
    const counters = [...text.matchAll(/^# TYPE (\S+) counter$/gm)].map((m) => m[1]);
    const distributions = [...text.matchAll(/^# TYPE (\S+) (?:histogram|summary)$/gm)].map((m) => m[1]);
    expect(counters.length).toBeGreaterThan(2);
    expect(distributions.length).toBeGreaterThan(2);
    // Each OpenMetrics counter family `x` has samples `x_total`, and counters, histograms
    // and summaries `x_created`: the text parser sees them as other, untyped families
    // without HELP. Nothing else is reported.
    const r = promtool(text);
    const created = [...counters, ...distributions].map((c) => `${c}_created no help text`);
    expect(r.output.split('\n').sort()).toEqual([...counters.map((c) => `${c}_total no help text`), ...created].sort());
    // With target_info, an info-typed family: the text parser stops there.
    expect(promtool(unescapeHelp(await render(true))).output).toBe('error while linting: text format parsing error in line 2: unknown metric type "info"');
    // Undo only the OpenMetrics-only constructs (counter family names, info type, # UNIT,
    // `_created`, # EOF, the HELP escape): what is left lints clean, so names, labels and sample
    // structure of the OpenMetrics output are what promtool wants.
    let fixed = unescapeHelp(await render(true))
      .replace('# HELP target Target metadata\n# TYPE target info', '# HELP target_info Target metadata\n# TYPE target_info gauge')
      .replace(/^# UNIT .*\n/gm, '')
      .replace(/^[a-zA-Z_:][a-zA-Z0-9_:]*_created(\{[^\n]*\})? \S+\n/gm, '')
      .replace(/^# EOF\n/m, '');
    for (const c of counters) {
      fixed = fixed.replace(`# HELP ${c} `, `# HELP ${c}_total `).replace(`# TYPE ${c} counter`, `# TYPE ${c}_total counter`);
    }
    const clean = promtool(fixed);
    expect(clean.output).toBe('');
    expect(clean.status).toBe(0);
  });
});

describe('python3-prometheus-client reads every sample back', () => {
  for (const openMetrics of [false, true]) {
    for (const [name, opts] of CONFIGS) {
      it(`${openMetrics ? 'OpenMetrics (strict parser)' : 'text format'}: ${name}`, async () => {
        const text = await render(openMetrics, opts, false);
        const families = pythonParse(text, openMetrics);
        const got = families.flatMap((f) => f.samples).map(sampleKey).sort();
        const want = parseExposition(text).map(sampleKey).sort();
        expect(got).toEqual(want);
        // Types and units as declared.
        const byName = new Map(families.map((f) => [f.name, f]));
        expect(byName.get(openMetrics ? 'http_requests' : 'http_requests')?.type).toBe('counter');
        expect(byName.get('rpc_duration_seconds')?.type).toBe('histogram');
        expect(byName.get('lat_sketch_milliseconds')?.type).toBe('summary');
        expect(byName.get('queue_depth')?.type).toBe('gauge');
        if (openMetrics) {
          expect(byName.get('rpc_duration_seconds')?.unit).toBe('seconds');
          expect(byName.get('http_requests')?.documentation).toBe('Requests "served"\nby route \\ method');
          if (!opts?.withoutTargetInfo) expect(byName.get('target')?.type).toBe('info');
        } else if (!opts?.withoutTargetInfo) {
          expect(byName.get('target_info')?.type).toBe('gauge');
        }
        // Every hostile label value, exactly, with its value.
        const requests = families.flatMap((f) => f.samples).filter((s) => s.name === 'http_requests_total' && s.labels.otel_scope_name !== 'other.scope');
        for (const [i, v] of HOSTILE.entries()) {
          const s = requests.find((x) => x.labels.route === v && (v !== '' || 'route' in x.labels));
          expect(s?.value, JSON.stringify(v)).toBe(i + 1);
        }
        const target = families.flatMap((f) => f.samples).find((s) => s.name === 'target_info');
        if (!opts?.withoutTargetInfo) expect(target?.labels).toEqual({ service_name: 'peers', deployment_env: 'ci "x"' });
      });
    }
  }
});

describe('the peers read merged series and _created', () => {
  it('records that render alike: one sample each with the merged value; promtool lints clean, python reads them', async () => {
    for (const openMetrics of [false, true]) {
      const exporter = new PrometheusExporter({ preventServerStart: true });
      const p = new MeterProvider({ readers: [exporter], views: VIEWS });
      providers.push(p);
      recordCollisions(p);
      const text = await exporter.render(openMetrics ? OM : 'text/plain; version=0.0.4');
      if (!openMetrics) {
        const r = promtool(text);
        expect(r.output).toBe('');
        expect(r.status).toBe(0);
      }
      const samples = pythonParse(text, openMetrics).flatMap((f) => f.samples);
      const ids = parseExposition(text).map((x) => sampleKey({ ...x, value: 0 }));
      expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
      for (const [name, labels, value] of MERGED) {
        const want = JSON.stringify(Object.entries({ ...labels, otel_scope_name: 'dup' }).sort());
        const found = samples.filter((x) => x.name === name && JSON.stringify(Object.entries(x.labels).sort()) === want);
        expect(found.map((x) => x.value), `${name} ${want}`).toEqual([value]);
      }
    }
  });

  it("python's strict OpenMetrics parser reads a _created per counter, histogram and summary series", async () => {
    const before = Date.now();
    const text = await render(true, {}, false);
    const families = pythonParse(text, true);
    let seen = 0;
    for (const f of families) {
      const created = f.samples.filter((x) => x.name === `${f.name}_created`);
      if (f.type === 'gauge' || f.type === 'info') {
        expect(created, f.name).toEqual([]);
        continue;
      }
      const series = f.samples.filter((x) => x.name === (f.type === 'counter' ? `${f.name}_total` : `${f.name}_count`));
      expect(created.length, f.name).toBe(series.length);
      for (const c of created) {
        expect(c.value * 1000).toBeGreaterThan(before - 60_000);
        expect(c.value * 1000).toBeLessThanOrEqual(Date.now());
      }
      seen += created.length;
    }
    expect(seen).toBeGreaterThan(20);
    expect(new Set(families.filter((f) => f.samples.some((x) => x.name.endsWith('_created'))).map((f) => f.type))).toEqual(new Set(['counter', 'histogram', 'summary']));
  });
});
