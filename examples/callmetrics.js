// Call metrics for a long-running agent: the duration and count of the calls it makes
// to the APIs it depends on, served for Prometheus on localhost, with runtime metrics.
//   npm run build:ts && node examples/callmetrics.js                 serve until Ctrl-C
//   node examples/callmetrics.js --duration 3 --port 0               stop after 3 s, print a scrape
'use strict';
const { MetricsEngine } = require('..');

const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const duration = Number(arg('duration', '0'));
const port = Number(arg('port', '9464'));

const engine = new MetricsEngine({
  enabled: true,
  host: '127.0.0.1',
  port,
  quantiles: [0.5, 0.9, 0.99],
  callTimeoutMs: 2000, // short, so the demo shows timeouts; the default is 2 minutes
  runtimeMetrics: true,
});

// Stand-ins for the dependencies: latency in ms, failure rate.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const api = {
  getUser: engine.instrument('http', 'getUser', async (id) => {
    await sleep(5 + Math.random() * 20);
    if (Math.random() < 0.05) throw new Error('503 from users service');
    return { id };
  }),
  query: engine.instrument('db', 'query', async (sql) => {
    await sleep(1 + Math.random() ** 4 * 200); // mostly fast, a long tail
    return [sql];
  }),
  parseConfig: engine.instrument('local', 'parseConfig', (text) => JSON.parse(text)), // sync
};

// A call measured by hand: recordCall() returns end(); end(err) counts a failure.
function subscribe() {
  const end = engine.recordCall('queue', 'subscribe');
  if (Math.random() < 0.1) return; // lost: end() never comes; counted as timed out after 2 s
  setTimeout(() => end(), 50);
}

async function main() {
  const url = await engine.publishMetrics();
  console.log(`metrics: ${url}`);
  const work = setInterval(() => {
    api.getUser(42).catch(() => {});
    api.query('SELECT 1').catch(() => {});
    try {
      api.parseConfig(Math.random() < 0.02 ? '{bad' : '{"a":1}');
    } catch {
      // counted as an error, rethrown to us
    }
    subscribe();
  }, 2);
  const stop = async () => {
    clearInterval(work);
    await sleep(300);
    const res = await fetch(url);
    const text = await res.text();
    console.log(text.split('\n').filter((l) => l.startsWith('hotmeter_')).join('\n'));
    await engine.shutdown();
  };
  if (duration > 0) setTimeout(stop, duration * 1000);
  else process.once('SIGINT', stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
