import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, copyFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { packagePath } from '../../src/util/paths.js';
import { CLOTHING7, copySubset } from '../helpers/dataset.js';

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

  describe('the packed tarball in an empty project', () => {
    let dir = '';
    after(() => (dir ? rm(dir, { recursive: true, force: true }) : undefined));

    it('installs, type-checks the README example strictly (skipLibCheck false), runs it, and loads with require()', async () => {
      dir = await mkdtemp(join(tmpdir(), 'headswap-consumer-'));
      const { stdout: packed } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: packagePath() });
      const tarball = (JSON.parse(packed) as { filename: string }[])[0]!.filename;
      await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
      const typesNode = (JSON.parse(await readFile(packagePath('node_modules', '@types', 'node', 'package.json'), 'utf8')) as { version: string }).version;
      // Install scripts off: onnxruntime-node's would try to download CUDA libraries (offline here),
      // and better-sqlite3's compile is the repository's own `npm ci`'s job; its built module is copied.
      await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', `./${tarball}`, `@types/node@${typesNode}`], { cwd: dir, maxBuffer: 1 << 24 });
      await cp(packagePath('node_modules', 'better-sqlite3', 'build'), join(dir, 'node_modules', 'better-sqlite3', 'build'), { recursive: true });
      // TensorFlow.js is an optional peer: a plain install leaves it out.
      await assert.rejects(readdir(join(dir, 'node_modules', '@tensorflow')), { code: 'ENOENT' });

      // The README's library example, verbatim, on photos laid out as it names them.
      const readme = await readFile(packagePath('README.md'), 'utf8');
      const example = /## Library\s+```ts\n([\s\S]*?)```/.exec(readme)?.[1];
      assert.ok(example !== undefined && example.includes('loadClassifier'), 'the README has its library example');
      // And its block of subpath imports, type-checked too (not run: it would start their tools).
      const subpaths = /\n```ts\n(import \{[^\n]*'headswap\/server'[\s\S]*?)```/.exec(readme)?.[1];
      assert.ok(subpaths !== undefined && subpaths.includes('headswap/explain'), 'the README lists the subpath imports');
      await writeFile(join(dir, 'subpaths.ts'), subpaths);
      const classes = ['hat', 'pants', 'shoes'];
      await copySubset('train', classes, 8, join(dir, 'photos'));
      await copySubset('test', classes, 3, join(dir, 'held-out'));
      const shoe = (await readdir(join(CLOTHING7, 'test', 'shoes'))).sort().at(-1)!;
      await copyFile(join(CLOTHING7, 'test', 'shoes', shoe), join(dir, 'new.jpg'));
      await writeFile(join(dir, 'example.ts'), example);
      await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({
        compilerOptions: { strict: true, skipLibCheck: false, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', outDir: 'out' },
        files: ['example.ts', 'subpaths.ts'],
      }));
      const tsc = packagePath('node_modules', 'typescript', 'bin', 'tsc');
      const checked = await run(process.execPath, [tsc, '-p', dir], { cwd: dir }).then(() => '', (e: { stdout?: string }) => e.stdout ?? String(e));
      assert.equal(checked, '', 'the strict type check reports nothing');
      const { stdout: ran } = await run(process.execPath, [join('out', 'example.js')], { cwd: dir, maxBuffer: 1 << 24 });
      // console.log(result.evaluation.top1, result.out), then the top-3 rows of new.jpg.
      assert.match(ran, /^(0|1|0\.\d+) \S*photos\.model\n/);
      assert.match(ran, /label: '(hat|pants|shoes)'/);
      assert.match(ran, /index: [0-2]/);

      const script = `const h = require('headswap'); if (typeof h.train !== 'function' || typeof h.loadClassifier !== 'function') throw new Error('no facade');
        require('headswap/compare').compare({ data: 'photos' }).then(() => console.log('compared?'), (e) => console.log(e.name + ': ' + e.message));`;
      const { stdout: required } = await run(process.execPath, ['--input-type=commonjs', '-e', script], { cwd: dir });
      assert.match(required.trim(), /^HeadswapError: the from-scratch comparison needs TensorFlow\.js, .*npm install @tensorflow\/tfjs-core/);
    });
  });
});
