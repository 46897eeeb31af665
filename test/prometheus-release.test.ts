// Early release of a scrape's memory (PrometheusScrape.release): the native serializer's
// 2 MiB output blocks go back to its pool as soon as the scrape's consumer is done, not
// when a GC (and V8's concurrent ArrayBuffer sweep) gets round to the Buffers, so the next
// scrape writes into memory that is already mapped. Observed through the pool's size
// (native stats().pooledOutputBlocks), not guessed; the text of a scrape written into
// released blocks must be exactly a fresh one, and no consumer may see its chunks emptied
// while it still holds them.
import { afterEach, describe, expect, it } from 'vitest';
import { MeterProvider, PrometheusExporter } from '../src';
import type { PrometheusExporterOptions, PrometheusScrape } from '../src';
import { native } from '../src/sdk/native';
import { sleep, until } from './helpers';
import { getAndLeave, OM, request } from './prometheus-helpers';



const pooled = (): number => native().stats().pooledOutputBlocks;
const reused = (): number => native().stats().reusedOutputBlocks;
const lent = (): number => native().stats().lentOutputChunks;
const textOf = (s: PrometheusScrape): string => Buffer.concat(s.chunks as Buffer[]).toString('utf8');

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A provider with enough series for a text of several 2 MiB blocks (~6.5 MB). */
function setup(options: PrometheusExporterOptions = { preventServerStart: true }) {
  const exporter = new PrometheusExporter(options);
  const provider = new MeterProvider({ readers: [exporter], cardinalityLimit: 40_000, reclamation: false });
  cleanups.push(() => provider.shutdown());
  const requests = provider.getMeter('release').createCounter('release.requests');
  for (let i = 0; i < 25_000; i++) requests.add(i, { route: `/api/v1/items/${i}/${'x'.repeat(200)}` });
  return { exporter, requests };
}

/**
 * Releases `s` and waits until its blocks are back in the pool (the pool also holds what
 * earlier scrapes left: compared with its size just before).
 */
async function releaseAndWait(s: PrometheusScrape, what: string): Promise<void> {
  const base = pooled();
  s.release();
  await until(() => pooled() === base + s.chunks.length, 2_000, what);
}

/** Scrapes once and releases, so the pool holds at least that scrape's blocks; returns their count and the text. */
async function primePool(exporter: PrometheusExporter): Promise<{ blocks: number; text: string }> {
  const s = await exporter.scrape();
  const text = textOf(s);
  const blocks = s.chunks.length;
  await releaseAndWait(s, 'blocks back in the pool');
  return { blocks, text };
}

describe('PrometheusScrape.release', () => {
  it('gives the output blocks back at once; the next scrape writes into them and its text is a fresh one', async () => {
    const { exporter, requests } = setup();
    const first = await exporter.scrape();
    const text = textOf(first);
    const blocks = first.chunks.length;
    expect(blocks).toBeGreaterThanOrEqual(3);
    const base = pooled();
    first.release();
    // Detached now: the chunks read as empty; their memory is pooled on the next turns.
    expect(first.chunks.every((c) => c.byteLength === 0)).toBe(true);
    await until(() => pooled() === base + blocks, 2_000, 'blocks back in the pool');
    first.release(); // later calls do nothing
    await sleep(20);
    expect(pooled()).toBe(base + blocks);
    for (let round = 0; round < 3; round++) {
      const taken = reused();
      const s = await exporter.scrape();
      expect(reused() - taken).toBeGreaterThanOrEqual(blocks); // every block of its text was a pooled one
      expect(textOf(s)).toBe(text);
      await releaseAndWait(s, `round ${round}: blocks back`);
    }
    // One more series, into the same blocks: exactly one more line.
    requests.add(1, { route: 'one more' });
    const taken = reused();
    const withOne = await exporter.scrape();
    expect(reused() - taken).toBeGreaterThanOrEqual(blocks);
    const line = 'release_requests_total{route="one more",otel_scope_name="release"} 1\n';
    expect(textOf(withOne).length).toBe(text.length + line.length);
    expect(textOf(withOne).replace(line, '')).toBe(text);
    // Released, not left to a GC: blocks a finalizer gave back in a later test would move
    // the pool under that test's exact counts.
    withOne.release();
  });

  it('without release() the blocks stay with the Buffers until they are collected', async () => {
    const { exporter } = setup();
    const s = await exporter.scrape();
    const base = pooled();
    await sleep(100);
    expect(pooled()).toBe(base); // nothing came back while the chunks are held
    expect(textOf(s).length).toBe(s.byteLength);
    s.release(); // (see above: not left to a GC during the next test)
  });

  it('concurrent scrape() calls share one collection; its memory goes back only when each of them released it', async () => {
    const { exporter } = setup();
    const { blocks, text } = await primePool(exporter);
    const [a, b, c, om] = await Promise.all([exporter.scrape(), exporter.scrape(), exporter.scrape(), exporter.scrape(OM)]);
    expect(a.chunks).toBe(b.chunks);
    expect(b.chunks).toBe(c.chunks);
    expect(om.chunks).not.toBe(a.chunks); // another format: another collection
    a.release();
    a.release(); // one holder releasing twice counts once
    b.release();
    om.release();
    await sleep(50);
    expect(textOf(c)).toBe(text); // c still holds it: intact
    const base = pooled();
    c.release();
    expect(c.chunks.every((x) => x.byteLength === 0)).toBe(true);
    expect(om.chunks.every((x) => x.byteLength === 0)).toBe(true);
    await until(() => pooled() >= base + blocks, 2_000, 'blocks back after the last holder');
  });

  it('a scrape() that joins a collection in flight keeps it alive past the release of the first caller', async () => {
    const { exporter } = setup();
    const { text } = await primePool(exporter);
    const p1 = exporter.scrape();
    const p2 = exporter.scrape(); // joins before the collection resolved
    const s1 = await p1;
    s1.release(); // the first holder is done before the second one has looked
    const s2 = await p2;
    expect(textOf(s2)).toBe(text);
    s2.release();
  });

  it('render() releases what it rendered', async () => {
    const { exporter } = setup();
    const { blocks, text } = await primePool(exporter);
    const taken = reused();
    expect(await exporter.render()).toBe(text);
    expect(reused() - taken).toBeGreaterThanOrEqual(blocks);
    const base = pooled();
    await until(() => pooled() === base + blocks, 2_000, 'blocks back after render()');
  });

  it('the HTTP handler releases a scrape once its response is written, and when the client goes away mid-response', async () => {
    const { exporter } = setup({ port: 0 });
    await exporter.ready();
    const { blocks, text } = await primePool(exporter);
    let taken = reused();
    const r = await request(exporter.url);
    expect(r.status).toBe(200);
    expect(r.body).toBe(text);
    // The scrape wrote into the pooled blocks, and every one it lent comes back. (How many
    // stay pooled depends on timing: a streamed part may reuse the blocks of the part
    // before it, and the pool then frees the older ones it did not need.)
    expect(reused() - taken).toBeGreaterThanOrEqual(blocks);
    await until(() => lent() === 0 && pooled() > 0, 2_000, 'blocks back after a complete response');

    // A client that reads the first bytes and goes away.
    await getAndLeave(exporter.url);
    await until(() => lent() === 0 && pooled() > 0, 5_000, 'blocks back after the client left');
    // And the next scrape over HTTP is whole, in the same blocks.
    taken = reused();
    const again = await request(exporter.url);
    expect(again.body).toBe(text);
    expect(reused() - taken).toBeGreaterThanOrEqual(blocks);
  });
});

describe('native releaseOutput', () => {
  it('detaches only whole Buffers the serializer lent; wrong arguments are TypeErrors', async () => {
    const { exporter } = setup();
    const s = await exporter.scrape();
    const release = native().releaseOutput.bind(native());
    for (const bad of [undefined, null, 1, 'x', {}, new Float64Array(4), [1], ['x'], [new Float64Array(4)], [new DataView(new ArrayBuffer(8))], [{}]]) {
      expect(() => release(bad as never)).toThrow(TypeError);
    }
    expect(() => (release as (...a: unknown[]) => number)()).toThrow(TypeError);
    // Foreign memory and partial views of lent memory are left alone.
    const foreign = [Buffer.alloc(4 << 20, 1), Buffer.from('abc'), Buffer.allocUnsafeSlow(16).fill(2)];
    const view = s.chunks[0].subarray(0, 10);
    const tail = s.chunks[0].subarray(10);
    expect(release([...foreign, view, tail])).toBe(0);
    expect(foreign.map((b) => b.byteLength)).toEqual([4 << 20, 3, 16]);
    expect(view.byteLength).toBe(10);
    // Lent chunks are detached once; listing one twice detaches it once.
    expect(release([s.chunks[0], s.chunks[0]])).toBe(1);
    expect(s.chunks[0].byteLength).toBe(0);
    expect(view.byteLength).toBe(0); // a view of a detached buffer is empty too
    expect(release([s.chunks[0]])).toBe(0);
    expect(release(s.chunks as Buffer[])).toBe(s.chunks.length - 1);
  });
});
