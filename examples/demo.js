// The main demo: an HTTP server instrumented only through @opentelemetry/api, with
// hotmeter as the MeterProvider and its Prometheus endpoint on localhost.
//   npm run demo                      serve until Ctrl-C
//   npm run demo -- --duration 5      stop after 5 s (prints a final scrape)
'use strict';
const http = require('node:http');
const { metrics, ValueType } = require('@opentelemetry/api');
const { MeterProvider, PrometheusExporter } = require('..');

const argv = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : dflt;
};
const duration = Number(arg('duration', '0'));
const appPort = Number(arg('port', '8080'));
const metricsPort = Number(arg('metrics-port', '9464'));

// 1. The SDK: hotmeter, exported for Prometheus on 127.0.0.1.
const exporter = new PrometheusExporter({ port: metricsPort });
const provider = new MeterProvider({
  resource: { attributes: { 'service.name': 'hotmeter-demo' } },
  readers: [exporter],
});
metrics.setGlobalMeterProvider(provider);

// 2. The application: only the @opentelemetry/api.
const meter = metrics.getMeter('demo-server', '1.0.0');
const requests = meter.createCounter('http.server.requests', { description: 'HTTP requests served', valueType: ValueType.INT });
const duration_ = meter.createHistogram('http.server.request.duration', {
  description: 'HTTP request duration',
  unit: 's',
  advice: { explicitBucketBoundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25] },
});
const inflight = meter.createUpDownCounter('http.server.active_requests', { description: 'Requests in flight' });
meter
  .createObservableGauge('process.memory.rss', { description: 'Resident set size', unit: 'By' })
  .addCallback((r) => r.observe(process.memoryUsage.rss()));

const routes = {
  '/': () => 'hello\n',
  '/api/users': () => JSON.stringify([{ id: 1, name: 'ada' }]),
  '/api/slow': () => new Promise((r) => setTimeout(() => r('slow\n'), 5)),
};

const server = http.createServer(async (req, res) => {
  const start = process.hrtime.bigint();
  const route = routes[req.url] ? req.url : 'unknown';
  inflight.add(1, { method: req.method });
  const body = routes[req.url] ? await routes[req.url]() : 'not found\n';
  const status = routes[req.url] ? 200 : 404;
  res.writeHead(status, { 'content-type': 'text/plain' }).end(body);
  inflight.add(-1, { method: req.method });
  const attrs = { 'http.request.method': req.method, 'http.route': route, 'http.response.status_code': status };
  requests.add(1, attrs);
  duration_.record(Number(process.hrtime.bigint() - start) / 1e9, attrs);
});

function get(port, path) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: keepAlive }, (res) => {
        let data = '';
        res.on('data', (c) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode, body: data }));
      })
      .on('error', reject);
  });
}
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 8 });

async function driveTraffic(n) {
  const paths = ['/', '/api/users', '/api/users', '/api/slow', '/missing'];
  for (let i = 0; i < n; i += 8) {
    await Promise.all(Array.from({ length: 8 }, (_, j) => get(appPortActual, paths[(i + j) % paths.length])));
  }
}

async function main() {
  await exporter.ready();
  await new Promise((resolve) => server.listen(appPort, '127.0.0.1', resolve));
  appPortActual = server.address().port;
  console.log(`app:     http://127.0.0.1:${appPortActual}/  (also /api/users, /api/slow)`);
  console.log(`metrics: ${exporter.url}`);
  await driveTraffic(200);
  console.log('drove 200 requests; scrape the metrics URL, or curl the app to add more.');
  if (duration > 0) {
    setTimeout(async () => {
      const scrape = await get(new URL(exporter.url).port, new URL(exporter.url).pathname);
      console.log(scrape.body);
      keepAlive.destroy();
      server.close();
      await provider.shutdown();
    }, duration * 1000);
  } else {
    const stop = async () => {
      keepAlive.destroy();
      server.close();
      await provider.shutdown();
      process.exit(0);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  }
}
let appPortActual = appPort;
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
