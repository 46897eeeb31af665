'use strict';
// bench:server's driver and its method: every variant in each server process,
// switched every --phase-ms (250 ms) under one continuous autocannon load, so that what
// moves a run's figures (the host's speed, minute to minute; a process's own speed, for its
// whole life) is the same for every variant to within a quarter of a second.
//
// - A process holds every variant (its own instruments, created at start) and serves the
//   one last chosen by GET /__use?v=V, which answers with the process's counters at the
//   switch (CPU time, requests served, its clock): one phase's figures are the difference
//   between the switch that began it and the one that ended it.
// - Cycles: each visits every variant once, in an order shuffled per cycle (seeded), so no
//   variant always follows another (garbage a variant leaves is collected in whatever
//   phase comes next; shuffling spreads that over all variants alike).
// - Per cycle, each variant's requests/s and CPU per request are divided by `none`'s of
//   the same cycle (phases at most a cycle apart). Reported: the median of those ratios
//   over all cycles of all processes, its IQR (how much single phases scatter), and a 95%
//   confidence interval for the median (distribution-free: order statistics, binomial
//   ranks), which is what the verdict reads: PASS when the whole interval is on the good
//   side of the 2% line, FAIL when it is all beyond, INCONCLUSIVE when it straddles. The
//   A/A control (`none2`, the same code as `none`) must come out at 1 within its own
//   interval; if its interval excludes 1 by more than 0.5% the method is biased in that
//   run and every verdict is INCONCLUSIVE.
// - Verdicts, each against the 2% line: the timing harness alone (`bare`: the least any
//   library's variant can cost), hotmeter and hotmeter through bound handles (`hmbound`)
//   against `none`, and each hotmeter variant against `bare` in the same cycle (its own
//   calls); hotmeter (fresh attributes) also against `attrs` (the harness plus the user's
//   attribute objects: what is left is the library's calls alone, verdict.libraryCalls).
//   result.verdict.throughput / .cpuPerRequest are hotmeter's (fresh attributes),
//   .bound the bound handles', .harness the harness's.
// - The first --warmup s of each process (every variant served in turn) are discarded.
// - p99: every response's latency, attributed to the variant active when it arrived.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

/** The server processes run this file with `--serve`. */
const SERVER_SCRIPT = path.join(__dirname, 'server.js');
const TARGET = 0.02;
const SERVER_CPU = 1; // with pinning: the servers' CPU (autocannon, in this process, runs on CPU 0)
const LIBRARIES = ['hotmeter', 'hmbound', 'otel', 'prom'];
const TITLE = {
  none: 'no metrics',
  none2: 'no metrics, 2nd process (A/A)',
  bare: 'timing only, no library',
  attrs: 'timing and attribute objects, no library',
  hotmeter: 'hotmeter',
  hmbound: 'hotmeter, bound handles per route',
  otel: '@opentelemetry/sdk-metrics',
  prom: 'prom-client',
};
// What autocannon sends, in turn on each connection.
const REQUESTS = [
  { method: 'GET', path: '/api/users' },
  { method: 'GET', path: '/api/orders/1234' },
  { method: 'POST', path: '/api/orders', body: '{"item":1}', headers: { 'content-type': 'application/json' } },
  { method: 'GET', path: '/api/users' },
  { method: 'GET', path: '/missing' },
];

function startServer(variant, cpu) {
  return new Promise((resolve, reject) => {
    const cmd = cpu === undefined ? [process.execPath] : ['taskset', '-c', String(cpu), process.execPath];
    const child = spawn(cmd[0], [...cmd.slice(1), SERVER_SCRIPT, '--serve', variant], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    child.stdout.setEncoding('utf8').on('data', (d) => {
      buf += d;
      const m = /listening (\d+)/.exec(buf);
      if (m) resolve({ variant, child, port: Number(m[1]) });
    });
    child.on('exit', (code) => reject(new Error(`${variant} server exited (${code}) before listening`)));
  });
}

function get(port, pathName) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: pathName, agent: false }, (res) => {
      let data = '';
      res.setEncoding('utf8').on('data', (d) => (data += d)).on('end', () => resolve(data));
    }).on('error', reject);
  });
}

/**
 * What went wrong in one autocannon run `r`, given the server's /__cpu (or /__use)
 * counters before and after it: errors, timeouts, resets, 1xx/3xx/5xx, 4xx other than the
 * /missing 404s, requests the server did not expect, answers that do not add up.
 */
function checkRun(r, before, after, connections) {
  const codes = r.statusCodeStats || {};
  const count = (prefix) => Object.entries(codes).reduce((a, [c, s]) => a + (String(c)[0] === prefix ? s.count : 0), 0);
  const client4xx = count('4');
  const server404 = after.served404 - before.served404;
  const served = after.served - before.served;
  const problems = [];
  if (r.errors) problems.push(`${r.errors} errors`);
  if (r.timeouts) problems.push(`${r.timeouts} timeouts`);
  if (r.resets) problems.push(`${r.resets} resets`);
  if (r.mismatches) problems.push(`${r.mismatches} mismatches`);
  for (const c of ['1', '3', '5']) if (count(c)) problems.push(`${count(c)} ${c}xx`);
  if (after.unexpected - before.unexpected) problems.push(`${after.unexpected - before.unexpected} unexpected requests`);
  // autocannon counts the answers it read; requests still in flight when it stopped were
  // served but not counted: at most one per connection.
  if (client4xx > server404 || server404 - client4xx > connections) problems.push(`4xx: client ${client4xx}, server 404 ${server404}`);
  if (r.requests.total > served || served - r.requests.total > connections) problems.push(`answered ${r.requests.total}, served ${served}`);
  return problems;
}

/**
 * Asks each {v, srv, k} (a library variant and a server process holding it) what its
 * instruments counted and compares it with what the handler served, per method, route and
 * status; prints a line each. True when every count matched.
 */
async function verifyCounts(list) {
  let ok = true;
  for (const { v, srv, k } of list) {
    const { served, counted } = JSON.parse(await get(srv.port, `/__verify?v=${v}`));
    const problems = [];
    for (const [key, n] of Object.entries(served)) {
      for (const metric of ['http.server.requests', 'http.server.request.duration']) {
        const got = counted[`${metric} ${key}`];
        if (got !== n) problems.push(`${metric} ${key}: counted ${got}, served ${n}`);
      }
    }
    const total = Object.values(served).reduce((a, b) => a + b, 0);
    console.log(`  ${problems.length === 0 ? 'ok  ' : 'FAIL'} ${v} (process ${k + 1}): ${total} requests served, every one counted in both instruments${problems.length ? `: ${problems.slice(0, 3).join('; ')}` : ''}`);
    if (problems.length) ok = false;
  }
  return ok;
}

/** Writes bench/results/server.json: `{ benchmark: 'bench:server', ...result }`. */
function writeResults(result) {
  const file = path.join(__dirname, 'results', 'server.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify({ benchmark: 'bench:server', ...result }, null, 1) + '\n');
}

/** Quantile with linear interpolation (R type 7). */
function quantile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  const h = (s.length - 1) * p;
  const lo = Math.floor(h);
  return lo + 1 < s.length ? s[lo] + (h - lo) * (s[lo + 1] - s[lo]) : s[lo];
}
const median = (xs) => quantile(xs, 0.5);
const summary = (xs) => ({ median: median(xs), q1: quantile(xs, 0.25), q3: quantile(xs, 0.75) });

const pct = (x, digits = 1) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(digits)}%`;
const int = (x) => Math.round(x).toLocaleString('en-US');

/** Deterministic PRNG (mulberry32), so a run's phase orders can be reproduced. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled(xs, rand) {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/**
 * A 95% confidence interval for the median of `xs`, without assuming a distribution: the
 * k-th smallest and k-th largest values, k the largest rank with P(Binomial(n, 1/2) < k)
 * <= 2.5%. Null for fewer than 6 values (no such k).
 */
function medianCI(xs, level = 0.95) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const tail = (1 - level) / 2;
  // The pmf is stepped in logs: 0.5^n underflows to 0 past n = 1074 (a long run has more
  // cycles), and a zero pmf would never reach the tail and give the extremes.
  let cdf = 0;
  let logPmf = n * Math.log(0.5); // log P(X = 0)
  let k = 0; // P(X < k) <= tail
  for (let j = 0; j < n; j++) {
    const pmf = Math.exp(logPmf);
    if (cdf + pmf > tail) break;
    cdf += pmf;
    k = j + 1;
    logPmf += Math.log(n - j) - Math.log(j + 1);
  }
  if (k < 1) return null;
  return { lo: s[k - 1], hi: s[n - k] };
}

/** PASS / FAIL / INCONCLUSIVE for "within TARGET" from a confidence interval of the ratio. */
function verdictCI(ci, higherIsBetter) {
  if (!ci) return 'INCONCLUSIVE';
  if (higherIsBetter) return ci.lo >= 1 - TARGET ? 'PASS' : ci.hi < 1 - TARGET ? 'FAIL' : 'INCONCLUSIVE';
  return ci.hi <= 1 + TARGET ? 'PASS' : ci.lo > 1 + TARGET ? 'FAIL' : 'INCONCLUSIVE';
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Loads one process for `seconds` while switching its variant every `phaseMs`; returns the
 * phases ({variant, rps, cpuPerReq, served, latencies}) that began after `warmup` s, and
 * the run's checks.
 */
async function loadInterleaved(srv, variants, { seconds, warmup, phaseMs, connections, rand }) {
  const autocannon = require('autocannon');
  const phases = [];
  let order = [];
  let cycleNo = -1;
  const pickNext = () => {
    if (order.length === 0) {
      order = shuffled(variants, rand);
      cycleNo++;
    }
    return { variant: order.shift(), cycle: cycleNo };
  };
  const v = pickNext();
  const first = JSON.parse(await get(srv.port, `/__use?v=${v.variant}`));
  const t0 = first.us;
  let cur = { ...v, from: first, lat: [] }; // the phase responses are attributed to
  let done = false;
  const inst = autocannon({ url: `http://127.0.0.1:${srv.port}`, connections, duration: warmup + seconds, pipelining: 1, requests: REQUESTS });
  inst.on('response', (_client, _status, _bytes, ms) => cur.lat.push(ms));
  const finished = new Promise((resolve, reject) => {
    inst.on('done', resolve);
    inst.on('error', reject);
  });
  finished.then(() => (done = true));
  const all = [];
  const endAt = t0 + (warmup + seconds - 0.5) * 1e6;
  while (!done) {
    await sleep(phaseMs);
    if (done) break;
    const next = pickNext();
    const now = JSON.parse(await get(srv.port, `/__use?v=${next.variant}`));
    const served = now.served - cur.from.served;
    const phase = {
      variant: cur.variant,
      cycle: cur.cycle,
      ok: (cur.from.us - t0) / 1e6 >= warmup && now.us <= endAt,
      startS: (cur.from.us - t0) / 1e6,
      rps: served / ((now.us - cur.from.us) / 1e6),
      cpuPerReq: (now.cpuMicros - cur.from.cpuMicros) / served,
      served,
      lat: cur.lat,
    };
    cur = { ...next, from: now, lat: [] };
    all.push(phase);
  }
  // A cycle is kept only whole: every variant's phase began after the warm-up and ended
  // before the load stopped.
  for (let c = 0; c <= cycleNo; c++) {
    const cyc = all.filter((p) => p.cycle === c);
    if (cyc.length === variants.length && cyc.every((p) => p.ok)) phases.push(...cyc);
  }
  const r = await finished;
  const last = JSON.parse(await get(srv.port, '/__cpu'));
  const problems = checkRun(r, { served404: first.served404, unexpected: first.unexpected, served: first.served }, last, connections);
  return { phases, problems, total: r.requests.total };
}

/** Runs the method; `opts` as parsed by server.js's main. Resolves to false when a check failed. */
async function runInterleaved(opts) {
  const { variants, procs, seconds, warmup, phaseMs, connections, pin, seed, loadBefore, uptime, cpus } = opts;
  const perProcess = seconds / procs;
  console.log(
    `bench:server (interleaved): ${variants.length} variants in each of ${procs} server processes, switched every ${phaseMs} ms ` +
      `under one continuous load of ${connections} connections: ${warmup} s warm-up + ${perProcess.toFixed(0)} s measured per process ` +
      `(~${((procs * (warmup + perProcess)) / 60).toFixed(1)} min); ${cpus.length} x ${cpus[0]?.model.trim()}, node ${process.version}; ` +
      (pin ? `server on CPU ${SERVER_CPU}, autocannon on CPU 0` : 'no CPU pinning'),
  );
  console.log(`before: ${loadBefore}`);
  const rand = rng(seed);
  const servers = [];
  const runs = [];
  let failed = false;
  try {
    for (let k = 0; k < procs; k++) servers.push(await startServer(`all:${variants.join(',')}`, pin ? SERVER_CPU : undefined));
    for (const [k, srv] of servers.entries()) {
      const run = await loadInterleaved(srv, variants, { seconds: perProcess, warmup, phaseMs, connections, rand });
      runs.push(run);
      const cycles = run.phases.length / variants.length;
      const byVariant = (v) => median(run.phases.filter((p) => p.variant === v).map((p) => p.cpuPerReq));
      console.log(
        `process ${k + 1}: ${cycles} cycles, ${int(run.total)} requests; CPU µs/req (median of phases): ` +
          variants.map((v) => `${v} ${byVariant(v).toFixed(2)}`).join(', ') +
          (run.problems.length ? `; FAIL: ${run.problems.join('; ')}` : ''),
      );
      if (run.problems.length) failed = true;
    }
    const loadAfter = uptime();

    console.log('');
    const verified = await verifyCounts(variants.filter((v) => LIBRARIES.includes(v)).flatMap((v) => servers.map((srv, k) => ({ v, srv, k }))));
    if (!verified) failed = true;
    if (!failed) console.log(`  ok   every run: 0 errors, timeouts, resets; no 1xx/3xx/5xx; the only 4xx are the /missing 404s`);

    // Per cycle, ratios against that cycle's `none`.
    const ratios = Object.fromEntries(variants.map((v) => [v, { rps: [], cpu: [], delta: [] }]));
    const pooled = Object.fromEntries(variants.map((v) => [v, { rps: [], cpu: [], lat: [] }]));
    for (const run of runs) {
      for (let c = 0; c < run.phases.length; c += variants.length) {
        const cyc = run.phases.slice(c, c + variants.length);
        const base = cyc.find((p) => p.variant === 'none');
        for (const p of cyc) {
          ratios[p.variant].rps.push(p.rps / base.rps);
          ratios[p.variant].cpu.push(p.cpuPerReq / base.cpuPerReq);
          ratios[p.variant].delta.push(p.cpuPerReq - base.cpuPerReq);
          pooled[p.variant].rps.push(p.rps);
          pooled[p.variant].cpu.push(p.cpuPerReq);
          for (const l of p.lat) pooled[p.variant].lat.push(l);
        }
      }
    }
    const q99 = (xs) => {
      const s = Float64Array.from(xs).sort();
      return s.length ? s[Math.min(s.length - 1, Math.ceil(0.99 * s.length) - 1)] : NaN;
    };
    const rows = variants.map((v) => ({
      variant: v,
      title: TITLE[v],
      cycles: ratios[v].rps.length,
      rps: median(pooled[v].rps),
      rpsRatio: { ...summary(ratios[v].rps), ci95: medianCI(ratios[v].rps) },
      p99Ms: q99(pooled[v].lat),
      cpuPerReq: median(pooled[v].cpu),
      cpuRatio: { ...summary(ratios[v].cpu), ci95: medianCI(ratios[v].cpu) },
      cpuDeltaMicros: median(ratios[v].delta),
    }));
    const fmt = (s) => (s.ci95 ? `${pct(s.median - 1, 2)} (95% CI ${pct(s.ci95.lo - 1, 2)}, ${pct(s.ci95.hi - 1, 2)}; IQR ${pct(s.q1 - 1)}, ${pct(s.q3 - 1)})` : pct(s.median - 1, 2));
    console.log('');
    console.log(`ratios are per cycle against \`none\` of the same cycle: median (95% confidence interval of the median; interquartile range of single phases)`);
    console.log('');
    console.log('| server | cycles | req/s | req/s vs none | p99 ms | server CPU µs/req | CPU/req vs none |');
    console.log('|---|--:|--:|--:|--:|--:|--:|');
    for (const r of rows) {
      console.log(
        `| ${r.title} | ${r.cycles} | ${int(r.rps)} | ${r.variant === 'none' ? '' : fmt(r.rpsRatio)} | ${r.p99Ms.toFixed(2)} | ${r.cpuPerReq.toFixed(2)} | ${r.variant === 'none' ? '' : fmt(r.cpuRatio)} |`,
      );
    }
    console.log('');
    console.log(`load: before ${loadBefore.replace(/.*load average/, 'load average')}; after ${loadAfter.replace(/.*load average/, 'load average')}`);

    const verdicts = {};
    const row = (v) => rows.find((r) => r.variant === v);
    const aa = row('none2');
    // The method is unbiased in this run if the A/A control's interval reaches 1 (within 0.5%).
    const biased = (s) => s.ci95 && (s.ci95.lo > 1.005 || s.ci95.hi < 0.995);
    const aaBiased = aa && (biased(aa.rpsRatio) || biased(aa.cpuRatio));
    if (aa) {
      console.log(
        `A/A control (none2, the same code as none): req/s ${fmt(aa.rpsRatio)}, CPU/req ${fmt(aa.cpuRatio)}: ` +
          (aaBiased ? 'its interval excludes 1: the method was biased in this run, so no verdict holds' : 'its interval contains 1 (within 0.5%): no bias between phases shows'),
      );
    }
    const judge = (s, higherIsBetter) => (aaBiased ? 'INCONCLUSIVE' : verdictCI(s.ci95, higherIsBetter));
    // Per cycle, variant a's phase against variant b's.
    const paired = (a, b) => {
      const out = { rps: [], cpu: [] };
      for (const run of runs) {
        for (let c = 0; c < run.phases.length; c += variants.length) {
          const cyc = run.phases.slice(c, c + variants.length);
          const pa = cyc.find((p) => p.variant === a);
          const pb = cyc.find((p) => p.variant === b);
          out.rps.push(pa.rps / pb.rps);
          out.cpu.push(pa.cpuPerReq / pb.cpuPerReq);
        }
      }
      return { rps: { ...summary(out.rps), ci95: medianCI(out.rps) }, cpu: { ...summary(out.cpu), ci95: medianCI(out.cpu) } };
    };
    const bare = row('bare');
    if (bare) {
      // The harness alone: the least any library's variant can cost here.
      verdicts.harness = { throughput: judge(bare.rpsRatio, true), cpuPerRequest: judge(bare.cpuRatio, false) };
      console.log(
        `the timing harness alone (bare) within 2% of no metrics?: throughput ${verdicts.harness.throughput} (${fmt(bare.rpsRatio)}), ` +
          `server CPU per request ${verdicts.harness.cpuPerRequest} (${fmt(bare.cpuRatio)}, ${bare.cpuDeltaMicros >= 0 ? '+' : ''}${bare.cpuDeltaMicros.toFixed(3)} µs)`,
      );
    }
    for (const v of ['hotmeter', 'hmbound']) {
      const hm = row(v);
      if (!hm) continue;
      const own = bare ? paired(v, 'bare') : undefined;
      // Fresh attributes: the library's calls alone, without the user's attribute objects.
      const lib = v === 'hotmeter' && row('attrs') ? paired(v, 'attrs') : undefined;
      const out = {
        throughput: judge(hm.rpsRatio, true),
        cpuPerRequest: judge(hm.cpuRatio, false),
        ...(own && { ownCallsThroughput: judge(own.rps, true), ownCallsCpuPerRequest: judge(own.cpu, false) }),
        ...(lib && { libraryCalls: { throughput: judge(lib.rps, true), cpuPerRequest: judge(lib.cpu, false) } }),
      };
      // verdict.throughput etc. are the default API's (hotmeter); verdict.bound the bound handles'.
      if (v === 'hotmeter') Object.assign(verdicts, out, { aaBiased: Boolean(aaBiased) });
      else verdicts.bound = out;
      console.log(
        `VERDICT "${TITLE[v]} within 2% of no metrics": throughput ${out.throughput} (${fmt(hm.rpsRatio)}), ` +
          `server CPU per request ${out.cpuPerRequest} (${fmt(hm.cpuRatio)}, ${hm.cpuDeltaMicros >= 0 ? '+' : ''}${hm.cpuDeltaMicros.toFixed(3)} µs)`,
      );
      if (own) {
        console.log(
          `  ${TITLE[v]} vs the timing-only harness (its own calls within 2%?): throughput ${out.ownCallsThroughput} (${fmt(own.rps)}), ` +
            `server CPU per request ${out.ownCallsCpuPerRequest} (${fmt(own.cpu)})`,
        );
      }
      if (lib) {
        const made = paired('attrs', bare ? 'bare' : 'none');
        console.log(
          `  the attribute objects themselves (attrs vs ${bare ? 'bare' : 'none'}): CPU per request ${fmt(made.cpu)}; ` +
            `${TITLE[v]} vs attrs (the library's calls alone): throughput ${out.libraryCalls.throughput} (${fmt(lib.rps)}), ` +
            `server CPU per request ${out.libraryCalls.cpuPerRequest} (${fmt(lib.cpu)})`,
        );
      }
    }
    if (bare || verdicts.bound || verdicts.throughput) console.log('  (PASS: the 95% interval of the median is within 2%; FAIL: it is all beyond 2%; INCONCLUSIVE: it straddles the line)');

    writeResults({
      method: 'interleaved',
      date: new Date().toISOString(),
      environment: { node: process.version, cpus: cpus.length, cpu: cpus[0]?.model.trim(), pinned: pin ? { server: SERVER_CPU, autocannon: 0 } : false, uptimeBefore: loadBefore, uptimeAfter: loadAfter },
      config: { procs, seconds, warmup, phaseMs, connections, seed, variants, target: TARGET, timing: opts.timing },
      verdict: verdicts,
      rows,
      phases: runs.map((r) => r.phases.map(({ lat, ...p }) => p)),
    });
  } finally {
    for (const s of servers) s.child.kill('SIGTERM');
  }
  return !failed;
}

module.exports = { runInterleaved, medianCI, verdictCI };
