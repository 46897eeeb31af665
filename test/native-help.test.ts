// When the addon cannot be loaded (no prebuild for this platform and no source build, or
// a prebuild this system's glibc is too old for), the error says which platform and libc
// this is, which prebuilds the package has, and what to install; the loader's error is
// kept as its cause. The install-time path is covered by scripts/prebuild-test.sh.
import { describe, it, expect, vi, afterEach } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadAddon, type NativeBinding } from '../src/sdk/native';
import { addonHelp, libcName, listPrebuilds, PREBUILD_GLIBC_FLOOR } from '../src/sdk/native-help';

const tuple = `${process.platform}-${process.arch}`;

function fakeRoot(files: string[]): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hotmeter-help-'));
  for (const f of files) {
    fs.mkdirSync(path.dirname(path.join(root, 'prebuilds', f)), { recursive: true });
    fs.writeFileSync(path.join(root, 'prebuilds', f), '');
  }
  return root;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('addon load failure', () => {
  it('loadAddon rethrows with platform, libc, prebuilds, what to install, and the cause', () => {
    const root = fakeRoot(['win32-x64/hotmeter.node', 'darwin-arm64/hotmeter.node']);
    const cause = new Error("/x/hotmeter.node: version `GLIBC_2.35' not found (required by /x/hotmeter.node)");
    let thrown: unknown;
    try {
      loadAddon(root, (): NativeBinding => {
        throw cause;
      });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(Error);
    const err = thrown as Error;
    expect(err.cause).toBe(cause);
    const libc = libcName();
    expect(err.message).toContain(`hotmeter: no usable native addon for ${tuple}${libc ? ` (${libc})` : ''}, Node.js ${process.version}.`);
    expect(err.message).toContain("Loading it failed: /x/hotmeter.node: version `GLIBC_2.35' not found");
    expect(err.message).toContain('darwin-arm64/hotmeter.node, win32-x64/hotmeter.node.');
    expect(err.message).toContain(`None is for ${tuple}`);
    expect(err.message).toContain('npm rebuild hotmeter');
    if (process.platform === 'linux') {
      expect(libc).toMatch(/^(glibc \d+\.\d+|musl)$/);
      expect(err.message).toMatch(/install a C\+\+20 compiler \(GCC >= 11 or Clang >= 14\), make and Python 3/);
    }
  });

  it('loadAddon returns what the loader returns', () => {
    const b = {} as NativeBinding;
    expect(loadAddon(fakeRoot([]), () => b)).toBe(b);
  });

  it('names the glibc floor when this system is older than the glibc prebuild needs', () => {
    // process.report is how libcName reads the running glibc: pretend it is 2.17.
    vi.spyOn(process, 'platform', 'get').mockReturnValue('linux');
    vi.spyOn(process.report, 'getReport').mockReturnValue({ header: { glibcVersionRuntime: '2.17' } } as never);
    const t = `linux-${process.arch}`;
    const root = fakeRoot([`${t}/hotmeter.glibc.node`, `${t}/hotmeter.musl.node`]);
    expect(listPrebuilds(root)).toEqual([`${t}/hotmeter.glibc.node`, `${t}/hotmeter.musl.node`]);
    const msg = addonHelp(root, new Error('dlopen failed'));
    expect(msg).toContain(`no usable native addon for ${t} (glibc 2.17)`);
    expect(msg).toContain(`The ${t} glibc prebuild needs glibc ${PREBUILD_GLIBC_FLOOR} or later; this system has 2.17.`);
    expect(msg).toContain('apt-get install g++ make python3');
  });

  it('says musl, and what Alpine needs, when there is no glibc', () => {
    vi.spyOn(process, 'platform', 'get').mockReturnValue('linux');
    vi.spyOn(process.report, 'getReport').mockReturnValue({ header: {} } as never);
    const msg = addonHelp(fakeRoot([]));
    expect(msg).toContain(`no usable native addon for linux-${process.arch} (musl)`);
    expect(msg).toContain('Prebuilt addons in');
    expect(msg).toContain(': none.');
    expect(msg).toContain('apk add build-base python3');
  });
});
