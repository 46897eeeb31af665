// What to tell a user whose process cannot load the addon: which platform and libc this
// is, which prebuilt addons the package has, and what a source build needs. Used when
// loading fails at run time (native.ts) and, as a script, when the install script's
// fallback build fails (package.json: "install": "node-gyp-build || node dist/cjs/sdk/native-help.js").
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The oldest glibc the Linux glibc prebuilds load on (scripts/check-glibc.sh enforces it). */
export const PREBUILD_GLIBC_FLOOR = '2.28';

/** 'glibc 2.31', 'musl', or '' off Linux. */
export function libcName(): string {
  if (process.platform !== 'linux') return '';
  let glibc: string | undefined;
  try {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    glibc = report?.header?.glibcVersionRuntime;
  } catch {
    // no report support: fall through
  }
  return glibc ? `glibc ${glibc}` : 'musl';
}

/** The prebuilt addons under `root`/prebuilds, as 'linux-x64/hotmeter.glibc.node'. */
export function listPrebuilds(root: string): string[] {
  const dir = path.join(root, 'prebuilds');
  const out: string[] = [];
  try {
    for (const tuple of fs.readdirSync(dir).sort()) {
      try {
        for (const f of fs.readdirSync(path.join(dir, tuple)).sort()) if (f.endsWith('.node')) out.push(`${tuple}/${f}`);
      } catch {
        // not a directory
      }
    }
  } catch {
    // no prebuilds/
  }
  return out;
}

function buildTools(libc: string): string {
  if (process.platform === 'win32') {
    return 'Visual Studio 2022 with "Desktop development with C++", and Python 3';
  }
  if (process.platform === 'darwin') return 'the Xcode command-line tools (xcode-select --install) and Python 3';
  const generic = 'a C++20 compiler (GCC >= 11 or Clang >= 14), make and Python 3';
  if (libc === 'musl') return `${generic} (Alpine: apk add build-base python3)`;
  return `${generic} (Debian/Ubuntu: apt-get install g++ make python3; RHEL/Fedora: dnf install gcc-c++ make python3)`;
}

/**
 * The explanation for a failed addon load or build: platform, arch, libc, Node.js
 * version, the prebuilds there are, why none fits when that can be told, and what to
 * install for a source build. `cause`: the loader's error, if any.
 */
export function addonHelp(root: string, cause?: unknown): string {
  const libc = libcName();
  const tuple = `${process.platform}-${process.arch}`;
  const lines = [
    `hotmeter: no usable native addon for ${tuple}${libc ? ` (${libc})` : ''}, Node.js ${process.version}.`,
  ];
  if (cause !== undefined) {
    const msg = (cause instanceof Error ? cause.message : String(cause)).trim().split('\n')[0];
    lines.push(`  Loading it failed: ${msg}`);
  }
  const prebuilds = listPrebuilds(root);
  lines.push(`  Prebuilt addons in ${path.join(root, 'prebuilds')}: ${prebuilds.length ? prebuilds.join(', ') : 'none'}.`);
  const mine = prebuilds.filter((p) => p.startsWith(`${tuple}/`));
  const glibc = /^glibc (\d+\.\d+)/.exec(libc);
  if (mine.some((p) => p.includes('.glibc.')) && glibc && compareVersions(glibc[1], PREBUILD_GLIBC_FLOOR) < 0) {
    lines.push(`  The ${tuple} glibc prebuild needs glibc ${PREBUILD_GLIBC_FLOOR} or later; this system has ${glibc[1]}.`);
  } else if (mine.length === 0) {
    lines.push(`  None is for ${tuple}${libc ? ` with ${libc.split(' ')[0]}` : ''}, so the addon must be built from source.`);
  }
  lines.push(`  To build it from source, install ${buildTools(libc)}, then run: npm rebuild hotmeter`);
  lines.push('  (see "Building from source" in docs/RELEASING.md of the hotmeter repository).');
  return lines.join('\n');
}

function compareVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

// As the install script's fallback: node-gyp-build could neither load a prebuild nor
// build the addon (its own errors are printed above this). Explain, with the error that
// loading gives (e.g. a glibc symbol version not found), and fail the install.
if (require.main === module) {
  const root = path.resolve(__dirname, '..', '..', '..');
  let cause: unknown;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    (require('node-gyp-build') as (dir: string) => unknown)(root);
  } catch (err) {
    cause = err;
  }
  console.error(`\n${addonHelp(root, cause)}\n`);
  process.exit(1);
}
