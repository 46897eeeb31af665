// The Prometheus exporter's LabelEncoder: label sets encoded as the text format prints them.
import type { Attributes } from '@opentelemetry/api';
import type { LabelEncoder } from '../../export/label-encoder';
import { labelBlock } from './serializer';

/**
 * The Prometheus label block `{k="v",...}` (sanitised names, escaped values; '' for an
 * empty set), as the Prometheus text serializer prints it. Not injective by nature:
 * label sets Prometheus cannot tell apart encode alike, and a batcher keyed by it merges them.
 */
export const prometheusLabelEncoder: LabelEncoder = Object.freeze({
  id: 'prometheus.text.v1',
  encode: (attributes: Attributes): string => labelBlock(attributes),
});
