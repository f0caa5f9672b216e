import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { packagePath } from '../../src/util/paths.js';

const run = promisify(execFile);

describe('what a consumer project gets', () => {
  it('every entry of the package loads with require() from CommonJS (no top-level await on its graph)', async () => {
    const pkg = JSON.parse(await readFile(packagePath('package.json'), 'utf8')) as { name: string; exports: Record<string, unknown> };
    const names = Object.keys(pkg.exports).map((k) => (k === '.' ? pkg.name : `${pkg.name}/${k.slice(2)}`));
    assert.ok(names.length >= 6, names.join(', '));
    // A CommonJS script resolving the package by its name (self-reference through "exports").
    const script = `for (const n of ${JSON.stringify(names)}) { const m = require(n); if (Object.keys(m).length === 0) throw new Error(n + ' exports nothing'); }
      if (typeof require('${pkg.name}').train !== 'function') throw new Error('no train');
      console.log('ok');`;
    const { stdout } = await run(process.execPath, ['--input-type=commonjs', '-e', script], { cwd: packagePath() });
    assert.equal(stdout.trim(), 'ok');
  });

  it('the published files hold no source maps pointing at the unshipped src/', async () => {
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: packagePath() });
    const files = (JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    assert.ok(files.includes('dist/index.js') && files.includes('dist/index.d.ts'), 'the build is shipped');
    assert.deepEqual(files.filter((f) => f.endsWith('.map')), []);
    assert.ok(!files.some((f) => f.startsWith('src/')));
  });
});
