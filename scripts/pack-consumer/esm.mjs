// Consumer of the installed tarball through `import` (the ESM facade).
import { MeterProvider } from 'hotmeter';
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const require = createRequire(import.meta.url);
// The facade re-exports the CommonJS build: one module instance for both.
assert.equal(require('hotmeter').MeterProvider, MeterProvider);
const { exercise } = require('./exercise.cjs');
await exercise('esm', MeterProvider);
