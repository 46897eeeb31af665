// PrometheusExporter: a pull endpoint (the pull controller): each scrape collects and
// renders. Binds to 127.0.0.1 unless told otherwise.
import * as http from 'node:http';
import { diag } from '@opentelemetry/api';
import type { MetricProducer, MetricReader } from '../../export/reader';
import { serializeText } from './serializer';

/** Options of {@link PrometheusExporter}. */
export interface PrometheusExporterOptions {
  /** Interface to listen on. Default '127.0.0.1'. */
  host?: string;
  /** Port; 0 picks a free one. Default 9464. */
  port?: number;
  /** Path served. Default '/metrics'. */
  endpoint?: string;
  /** Do not listen; use {@link PrometheusExporter.render} from your own server. */
  preventServerStart?: boolean;
}

export const PROMETHEUS_TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export class PrometheusExporter implements MetricReader {
  readonly host: string;
  readonly endpoint: string;
  private port: number;
  private producer: MetricProducer | undefined;
  private server: http.Server | undefined;
  private listening: Promise<void> | undefined;

  constructor(options: PrometheusExporterOptions = {}) {
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port ?? 9464;
    this.endpoint = options.endpoint ?? '/metrics';
    if (!options.preventServerStart) this.listening = this.startServer();
  }

  /** @internal */
  setMetricProducer(producer: MetricProducer): void {
    if (this.producer !== undefined) throw new Error('hotmeter: a PrometheusExporter serves one MeterProvider');
    this.producer = producer;
  }

  /** Resolves once the server listens (immediately when it does not serve). */
  async ready(): Promise<void> {
    await this.listening;
  }

  /** The URL scrapes should use. */
  get url(): string {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `http://${host}:${this.port}${this.endpoint}`;
  }

  /** Collects and renders the text format, for mounting in your own server. */
  async render(): Promise<string> {
    if (this.producer === undefined) throw new Error('hotmeter: PrometheusExporter is not attached to a MeterProvider');
    const set = await this.producer.collect();
    return serializeText(set, this.producer.resource.attributes);
  }

  async forceFlush(): Promise<void> {}

  async shutdown(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private startServer(): Promise<void> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    this.server = server;
    return new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, this.host, () => {
        server.off('error', reject);
        const addr = server.address();
        if (addr && typeof addr === 'object') this.port = addr.port;
        resolve();
      });
    });
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== this.endpoint) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    this.render().then(
      (body) => {
        res.writeHead(200, { 'content-type': PROMETHEUS_TEXT_CONTENT_TYPE });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        diag.error(`hotmeter: Prometheus scrape failed: ${String(err)}`);
        res.writeHead(500, { 'content-type': 'text/plain' }).end('collection failed\n');
      },
    );
  }
}
