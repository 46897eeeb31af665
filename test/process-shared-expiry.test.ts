// MeterProvider({ processShared, reclaimIdleMillis }): expiry of shared series, fleet-wide.
// This process (src/) and test/fixtures/shared-expirer.js (dist/cjs: `npm run build:ts`)
// join one segment; each scrapes with a Prometheus exporter (render() counts as delivered).
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MeterProvider, PrometheusExporter } from '../src';
import { cleanupShared, sharedNames, sleep, startCommandChild, until } from './helpers';

const fixtures = path.join(__dirname, 'fixtures');
const { names, uniqueName } = sharedNames();
afterAll(() => cleanupShared(names));

/** Idle time before a series may expire, ms. */
const IDLE = 100;

interface Reply {
  text?: string;
  nodes?: number;
  error?: string;
}

/** A started test/fixtures/shared-expirer.js, driven by JSON commands. */
async function startExpirer(name: string) {
  const { send, exit } = await startCommandChild<Reply>(path.join(fixtures, 'shared-expirer.js'), [name, String(IDLE)]);
  return {
    add: (value: number, attrs: Record<string, string>) => send({ op: 'add', value, attrs }),
    level: (value: number, attrs: Record<string, string>) => send({ op: 'level', value, attrs }),
    bind: (attrs: Record<string, string>) => send({ op: 'bind', attrs }),
    boundAdd: (value: number) => send({ op: 'boundAdd', value }),
    unbind: () => send({ op: 'unbind' }),
    /** route -> value of ex.requests / ex.level in a scrape of the process. */
    scrape: async () => series((await send({ op: 'render' })).text ?? ''),
    nodes: async () => (await send({ op: 'stats' })).nodes,
    exit,
  };
}

/** "name route" -> value, of ex_requests_total and ex_level in a Prometheus text scrape. */
function series(text: string): Record<string, number> {
  const m: Record<string, number> = {};
  for (const x of text.matchAll(/^(ex_requests_total|ex_level)\{[^}]*route="([^"]*)"[^}]*\} (\S+)/gm)) m[`${x[1]} ${x[2]}`] = Number(x[3]);
  return m;
}

/** This process: a provider of `name` with expiry, its exporter and instruments. */
function local(name: string) {
  const exporter = new PrometheusExporter({ preventServerStart: true, withoutTargetInfo: true });
  const provider = new MeterProvider({ processShared: name, reclaimIdleMillis: IDLE, readers: [exporter] });
  const meter = provider.getMeter('ex-meter');
  return {
    provider,
    counter: meter.createCounter('ex.requests'),
    level: meter.createUpDownCounter('ex.level'),
    scrape: async () => series(await exporter.render('text/plain')),
  };
}

/** The start time (ms) of ex.requests{route} in a collect() of the provider. */
async function startOf(p: MeterProvider, route: string): Promise<number> {
  const r = (await p.collect()).records.find((x) => x.descriptor.name === 'ex.requests' && x.attributes.route === route);
  if (r === undefined) throw new Error(`no ex.requests{route=${route}}`);
  return Number(r.startTime);
}

type Fleet = { a: ReturnType<typeof local>; b: Awaited<ReturnType<typeof startExpirer>> };
/** Scrapes in both processes (each one's passes may expire), idle between, until `done`. */
async function scrapeUntil(f: Fleet, done: (a: Record<string, number>, b: Record<string, number>) => boolean, what: string): Promise<[Record<string, number>, Record<string, number>]> {
  let last: [Record<string, number>, Record<string, number>] = [{}, {}];
  await until(
    async () => {
      await sleep(IDLE / 2);
      last = [await f.a.scrape(), await f.b.scrape()];
      return done(...last);
    },
    30_000,
    what,
    0,
  );
  return last;
}

describe('processShared with reclaimIdleMillis: series expire fleet-wide', () => {
  it('a counter series both processes wrote, then left idle, goes from both scrapes; its nodes go; a later write is a new series from zero', async () => {
    const name = uniqueName('expire');
    const a = local(name);
    const b = await startExpirer(name);
    const f = { a, b };
    try {
      a.counter.add(2, { route: '/x' });
      a.counter.add(1, { route: '/x' });
      await b.add(3, { route: '/x' });
      await b.add(1, { route: '/x' });
      expect(await a.scrape()).toEqual({ 'ex_requests_total /x': 7 });
      expect(await b.scrape()).toEqual({ 'ex_requests_total /x': 7 });
      const start = await startOf(a.provider, '/x');
      // One node per process's cell of the series.
      expect(a.provider.processSharedStats()?.nodes).toBe(2);

      await scrapeUntil(f, (sa, sb) => !('ex_requests_total /x' in sa) && !('ex_requests_total /x' in sb), 'the idle series expired in both');
      expect(a.provider.processSharedStats()?.nodes).toBe(0);
      expect(await b.nodes()).toBe(0);

      await b.add(4, { route: '/x' });
      expect(await a.scrape()).toEqual({ 'ex_requests_total /x': 4 });
      expect(await b.scrape()).toEqual({ 'ex_requests_total /x': 4 });
      expect(await startOf(a.provider, '/x')).toBeGreaterThan(start);
      a.counter.add(1, { route: '/x' });
      expect(await b.scrape()).toEqual({ 'ex_requests_total /x': 5 });
    } finally {
      await b.exit();
      await a.provider.shutdown();
    }
  }, 60_000);

  it('label sets that come and go: each goes (expired, or removed by one process) and the next takes its place, exact in both scrapes; live series follow', async () => {
    const name = uniqueName('reuse');
    const a = local(name);
    const b = await startExpirer(name);
    const f = { a, b };
    try {
      const routes = ['/r0', '/r1', '/r2', '/r3', '/r4'];
      for (let i = 0; i < routes.length; i++) {
        const route = routes[i];
        const key = `ex_requests_total ${route}`;
        // a writes first: the series takes the slot the previous one left. b's scrape comes
        // first: after a removal, b has not looked since, and still has a record of the
        // previous series, which must not show (or be) this one.
        a.counter.add(1, { route });
        expect(await b.scrape()).toEqual({ [key]: 1 });
        await b.add(i + 2, { route });
        expect(await a.scrape()).toEqual({ [key]: i + 3 });
        expect(await b.scrape()).toEqual({ [key]: i + 3 });
        expect(a.provider.processSharedStats()).toMatchObject({ series: i + 1, liveSeries: 1 });
        if (i % 2 === 0) {
          await scrapeUntil(f, (sa, sb) => !(key in sa) && !(key in sb), `${route} expired in both`);
        } else {
          a.counter.remove({ route });
          expect(await a.scrape()).toEqual({});
        }
        expect(a.provider.processSharedStats()).toMatchObject({ series: i + 1, liveSeries: 0, nodes: 0 });
      }
    } finally {
      await b.exit();
      await a.provider.shutdown();
    }
  }, 60_000);

  it('a series another process holds a bound handle for, and an up-down counter series, stay while idle series expire', async () => {
    const name = uniqueName('kept');
    const a = local(name);
    const b = await startExpirer(name);
    const f = { a, b };
    try {
      a.counter.add(1, { route: '/idle' });
      a.counter.add(2, { route: '/b' });
      await b.bind({ route: '/b' });
      await b.boundAdd(5);
      a.level.add(2, { route: '/u' });
      await b.level(3, { route: '/u' });
      const all = { 'ex_requests_total /idle': 1, 'ex_requests_total /b': 7, 'ex_level /u': 5 };
      expect(await a.scrape()).toEqual(all);
      expect(await b.scrape()).toEqual(all);

      await scrapeUntil(f, (sa, sb) => !('ex_requests_total /idle' in sa) && !('ex_requests_total /idle' in sb), 'the unreferenced idle series expired');
      // Idle for several more expiry periods: still there, with their values.
      for (let round = 0; round < 4; round++) {
        await sleep(IDLE);
        const kept = { 'ex_requests_total /b': 7, 'ex_level /u': 5 };
        expect(await a.scrape()).toEqual(kept);
        expect(await b.scrape()).toEqual(kept);
      }
      // The handle still writes into the exported series.
      await b.boundAdd(1);
      expect(await a.scrape()).toEqual({ 'ex_requests_total /b': 8, 'ex_level /u': 5 });

      // Let go: then it expires, the up-down counter's series never.
      await b.unbind();
      const [sa, sb] = await scrapeUntil(f, (x, y) => !('ex_requests_total /b' in x) && !('ex_requests_total /b' in y), 'the series let go of expired');
      expect(sa).toEqual({ 'ex_level /u': 5 });
      expect(sb).toEqual({ 'ex_level /u': 5 });
    } finally {
      await b.exit();
      await a.provider.shutdown();
    }
  }, 60_000);
});
