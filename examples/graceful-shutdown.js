// Graceful shutdown: export what was recorded before the process goes.
//
//   node examples/graceful-shutdown.js                       record until Ctrl-C / SIGTERM, then flush
//   node examples/graceful-shutdown.js --exit beforeExit --records 10000
//                                                            record 10,000 requests, flush when the work is done
//
// A PushController exports every --interval ms (default 60 s): without a flush, whatever
// was recorded since the last export is lost when the process exits. Node's default
// reaction to SIGTERM and SIGINT is to exit at once, so a service installs handlers that
// call `provider.shutdown()`: it collects and exports one last time (everything recorded
// before the call is in that export), shuts the exporter down, and stops recording.
// A batch job that simply runs out of work flushes from 'beforeExit' instead. Either way
// the exporter here appends one JSON line per export to --out (default: stdout), with
// appendFileSync, so the line is on disk before the process exits.
//
// Options:
//   --out FILE         where exports go (JSON lines); '-' for stdout (default)
//   --interval MS      push interval (default 60000)
//   --exit MODE        signal (default): SIGTERM/SIGINT handlers flush, then the process ends;
//                      beforeExit: flush when the event loop runs dry; none: no flush (to compare)
//   --records N        record N requests, then idle (signal, none) or finish (beforeExit,
//                      default 10000); 0 (the default otherwise): record until the signal
//   --export-delay MS  make every export take this long (a slow backend; default 0)
//
// It prints JSON lines to stdout: {event:"ready"}, {event:"idle"} (--records done),
// {event:"shutdown", recorded} (what was recorded before shutdown began: the last export
// must contain exactly this), {event:"after-shutdown", ...} and {event:"exit"}. A second
// signal during shutdown exits at once with status 130 (the usual "Ctrl-C again to force").
'use strict';
const fs = require('node:fs');
const { diag, DiagConsoleLogger, DiagLogLevel, ValueType } = require('@opentelemetry/api');
const { MeterProvider, PushController, ExportResultCode } = require('..');

const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const out = arg('out', '-');
const intervalMillis = Number(arg('interval', '60000'));
const exitMode = arg('exit', 'signal');
const records = Number(arg('records', exitMode === 'beforeExit' ? '10000' : '0'));
const exportDelay = Number(arg('export-delay', '0'));
if (!['signal', 'beforeExit', 'none'].includes(exitMode)) throw new Error(`--exit must be signal, beforeExit or none, not ${exitMode}`);

// Warnings (e.g. "measurement after shutdown dropped") go to stderr.
diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN);

const emit = (event) => process.stdout.write(JSON.stringify(event) + '\n');
const write = (line) => (out === '-' ? process.stdout.write(line) : fs.appendFileSync(out, line));

/** An exporter: one JSON line per export, written synchronously. */
class JsonLinesExporter {
  constructor() {
    this.exports = 0;
  }
  async export(set) {
    if (exportDelay > 0) await new Promise((r) => setTimeout(r, exportDelay));
    const series = set.records.map((r) => ({
      name: r.descriptor.name,
      attributes: r.attributes,
      ...(r.aggregation.kind === 'sum' ? { sum: r.aggregation.sum } : { count: r.aggregation.count, sum: r.aggregation.sum }),
    }));
    write(JSON.stringify({ export: ++this.exports, time: set.time, pid: process.pid, series }) + '\n');
    return { code: ExportResultCode.SUCCESS };
  }
  async forceFlush() {}
  async shutdown() {}
}

const push = new PushController({ exporter: new JsonLinesExporter(), intervalMillis, timeoutMillis: 10_000 });
const provider = new MeterProvider({
  resource: { attributes: { 'service.name': 'graceful-shutdown-example' } },
  readers: [push],
});
const meter = provider.getMeter('graceful-shutdown-example');
const requests = meter.createCounter('app.requests', { valueType: ValueType.INT });
const latency = meter.createHistogram('app.latency', { unit: 'ms', advice: { explicitBucketBoundaries: [1, 5, 10, 50] } });

// What this process recorded, kept beside the SDK so the last export can be checked.
const recorded = { requests: {}, latencyCount: 0, latencySum: 0 };
const ROUTES = ['/', '/api/users', '/api/orders'];
let n = 0;
function recordOne() {
  const route = ROUTES[n % ROUTES.length];
  const status = n % 10 === 0 ? 500 : 200;
  const ms = n % 60;
  requests.add(1, { route, status });
  latency.record(ms, { route });
  const key = `${route} ${status}`;
  recorded.requests[key] = (recorded.requests[key] || 0) + 1;
  recorded.latencyCount++;
  recorded.latencySum += ms;
  n++;
}

// The "work": batches of requests on the event loop, so signals are handled between them.
let working = true;
let idle;
function work() {
  if (!working) return;
  if (records > 0 && n >= records) {
    emit({ event: 'idle', recorded: n });
    // signal mode: done, wait (an idle ref'd timer stands for the server's socket)
    if (exitMode !== 'beforeExit') idle = setInterval(() => {}, 60_000);
    return;
  }
  const until = records > 0 ? Math.min(records, n + 100) : n + 100;
  while (n < until) recordOne();
  setImmediate(work);
}

let shuttingDown = false;
async function shutdown(reason) {
  shuttingDown = true;
  working = false;
  clearInterval(idle);
  // Nothing records after this point: the snapshot is what the last export must hold.
  emit({ event: 'shutdown', reason, recorded: JSON.parse(JSON.stringify(recorded)) });
  try {
    await provider.shutdown(); // the last collection and export, then the exporter's shutdown
  } catch (e) {
    emit({ event: 'shutdown-failed', error: String(e) });
    process.exitCode = 1;
  }
  // After shutdown: recording is dropped (one diagnostic on stderr, never a throw);
  // collect() and forceFlush() reject with a clear error.
  requests.add(1, { route: '/late', status: 200 });
  requests.add(1, { route: '/late', status: 200 });
  const rejection = (p) => p.then(() => 'resolved', (e) => `rejected: ${e.message}`);
  emit({ event: 'after-shutdown', collect: await rejection(provider.collect()), forceFlush: await rejection(provider.forceFlush()) });
}

if (exitMode === 'signal') {
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      if (shuttingDown) {
        emit({ event: 'forced', signal });
        process.exit(130);
      }
      void shutdown(signal);
      // Nothing else keeps the loop alive: the process ends when shutdown's work is done.
    });
  }
} else if (exitMode === 'beforeExit') {
  // Emitted when the loop runs dry; shutdown() schedules more work, after which the
  // loop runs dry again and the process exits ('once': not a second time).
  process.once('beforeExit', () => void shutdown('beforeExit'));
}
process.on('exit', (code) => emit({ event: 'exit', code, exports: push.stats.exports }));

emit({ event: 'ready', pid: process.pid, exitMode, intervalMillis, records });
work();
