// Writes dist/esm/index.mjs: an ES module facade over the CommonJS build, so `import`
// and `require` share one module instance (no dual-package state).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const root = path.join(__dirname, '..');
const cjs = require(path.join(root, 'dist/cjs/index.js'));
const names = Object.keys(cjs).filter((n) => n !== 'default' && n !== '__esModule').sort();
const out = [
  "import { createRequire } from 'node:module';",
  'const require = createRequire(import.meta.url);',
  "const m = require('../cjs/index.js');",
  ...names.map((n) => `export const ${n} = m.${n};`),
  'export default m;',
  '',
].join('\n');
fs.mkdirSync(path.join(root, 'dist/esm'), { recursive: true });
fs.writeFileSync(path.join(root, 'dist/esm/index.mjs'), out);
