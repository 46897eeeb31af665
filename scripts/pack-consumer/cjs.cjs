// Consumer of the installed tarball through `require`.
'use strict';
const { MeterProvider } = require('hotmeter');
const { exercise } = require('./exercise.cjs');

exercise('cjs', MeterProvider).catch((err) => {
  console.error(err);
  process.exit(1);
});
