// Content negotiation for Prometheus scrapes: the Accept header picks the text format
// 0.0.4, OpenMetrics 1.0.0 or the protobuf format (as Prometheus' client_golang does).

/** The Content-Type of the Prometheus text format 0.0.4. */
export const PROMETHEUS_TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
/** The Content-Type of OpenMetrics 1.0.0 text. */
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/**
 * The Content-Type of the Prometheus protobuf format: io.prometheus.client.MetricFamily
 * messages, each prefixed by its length as a varint (Prometheus asks for it first when
 * started with `--enable-feature=native-histograms`).
 */
export const PROMETHEUS_PROTOBUF_CONTENT_TYPE = 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited';

/** The format a scrape gets. */
export interface NegotiatedFormat {
  readonly openMetrics: boolean;
  /** The protobuf format (openMetrics is then false). */
  readonly protobuf?: boolean;
  readonly contentType: string;
}

const PROTOBUF: NegotiatedFormat = Object.freeze({ openMetrics: false, protobuf: true, contentType: PROMETHEUS_PROTOBUF_CONTENT_TYPE });

const TEXT: NegotiatedFormat = Object.freeze({ openMetrics: false, contentType: PROMETHEUS_TEXT_CONTENT_TYPE });

interface MediaRange {
  type: string;
  params: Map<string, string>;
  q: number;
  order: number;
}

function parseAccept(accept: string): MediaRange[] {
  const out: MediaRange[] = [];
  let order = 0;
  for (const part of accept.split(',')) {
    const [rawType, ...rawParams] = part.split(';');
    const type = rawType.trim().toLowerCase();
    if (type === '') continue;
    const params = new Map<string, string>();
    let q = 1;
    for (const p of rawParams) {
      const eq = p.indexOf('=');
      if (eq < 0) continue;
      const k = p.slice(0, eq).trim().toLowerCase();
      const v = p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1');
      if (k === 'q') {
        const n = Number(v);
        q = Number.isFinite(n) ? Math.min(Math.max(n, 0), 1) : 0;
      } else {
        params.set(k, v);
      }
    }
    out.push({ type, params, q, order: order++ });
  }
  return out;
}

/**
 * The format for an Accept header: OpenMetrics 1.0.0 when the most preferred acceptable
 * range is `application/openmetrics-text` (version 1.0.0, 0.0.1 or none; the answer is
 * 1.0.0 text either way, which 0.0.1 parsers read) and `allowOpenMetrics` is true; the
 * text format 0.0.4 otherwise, including when the header is absent or names nothing this
 * exporter writes (a scraper that sent a header at all can read the text format, and an
 * answer beats a 406). The protobuf format when `allowProtobuf` is true and the most
 * preferred acceptable range is `application/vnd.google.protobuf` with
 * `proto=io.prometheus.client.MetricFamily` and `encoding=delimited`.
 */
export function negotiateFormat(accept: string | string[] | undefined, allowOpenMetrics = true, allowProtobuf = false): NegotiatedFormat {
  if (accept === undefined) return TEXT;
  const ranges = parseAccept(Array.isArray(accept) ? accept.join(',') : accept)
    .filter((r) => r.q > 0)
    .sort((a, b) => b.q - a.q || a.order - b.order);
  for (const r of ranges) {
    if (r.type === 'application/vnd.google.protobuf') {
      if (allowProtobuf && r.params.get('proto') === 'io.prometheus.client.MetricFamily' && r.params.get('encoding') === 'delimited') {
        return PROTOBUF;
      }
      continue;
    }
    if (r.type === 'application/openmetrics-text') {
      const v = r.params.get('version');
      if (allowOpenMetrics && (v === undefined || v === '1.0.0' || v === '0.0.1')) {
        return { openMetrics: true, contentType: OPENMETRICS_CONTENT_TYPE };
      }
      continue;
    }
    if (r.type === 'text/plain') {
      const v = r.params.get('version');
      if (v === undefined || v === '0.0.4') return TEXT;
      continue;
    }
    if (r.type === '*/*' || r.type === 'text/*') return TEXT;
  }
  return TEXT;
}
