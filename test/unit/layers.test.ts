import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { describe, it } from 'node:test';
import { packagePath } from '../../src/util/paths.js';

/** docs/layers.json: the layers of src/ top to bottom, and packages only one file may import. */
interface LayerMap {
  readonly layers: readonly { readonly name: string; readonly paths: readonly string[] }[];
  readonly onlyImporter: Readonly<Record<string, string>>;
}

const SRC = packagePath('src');
const map = JSON.parse(readFileSync(packagePath('docs/layers.json'), 'utf8')) as LayerMap;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [relative(SRC, p).split('\\').join('/')] : [];
  });
}

/**
 * Every module an ES module names: static imports and re-exports (type-only ones too: they tie
 * the design just the same), and dynamic `import('...')`.
 */
export function specifiers(code: string): string[] {
  const out: string[] = [];
  for (const m of code.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+['"]([^'"]+)['"]/gm)) out.push(m[1]!);
  for (const m of code.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) out.push(m[1]!);
  for (const m of code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]!);
  return out;
}

/** The layer index of a src/ file (0 = top), by the longest matching path in the map. */
function layerOf(file: string): number {
  let best = -1;
  let length = -1;
  map.layers.forEach((layer, i) => {
    for (const p of layer.paths) {
      const hit = p.endsWith('/') ? file.startsWith(p) : file === p;
      if (hit && p.length > length) [best, length] = [i, p.length];
    }
  });
  return best;
}

const files = sources(SRC).sort();
const imports = new Map(
  files.map((f) => {
    const specs = specifiers(readFileSync(join(SRC, f), 'utf8'));
    const local = specs.filter((s) => s.startsWith('.')).map((s) => posix.normalize(posix.join(dirname(f), s)).replace(/\.js$/, '.ts'));
    return [f, { local, packages: specs.filter((s) => !s.startsWith('.') && !s.startsWith('node:')) }];
  }),
);

describe('the layers of src/ (docs/layers.json)', () => {
  it('finds the imports of a module, type-only and dynamic ones included', () => {
    const code = "import a from 'x';\nimport type { B } from './b.js';\nexport {\n  c,\n} from '../c.js';\nimport 'side';\nconst d = await import('./d.js');\nconst s = `import e from 'e'`;";
    assert.deepEqual(specifiers(code).sort(), ['../c.js', './b.js', './d.js', 'side', 'x']);
  });

  it('puts every src/ file in a layer', () => {
    assert.deepEqual(files.filter((f) => layerOf(f) < 0), []);
  });

  it('imports only within a layer or downward', () => {
    const upward = files.flatMap((f) =>
      imports.get(f)!.local.filter((t) => layerOf(t) < layerOf(f)).map((t) => `${f} (${map.layers[layerOf(f)]!.name}) -> ${t} (${map.layers[layerOf(t)]!.name})`),
    );
    assert.deepEqual(upward, []);
  });

  it('resolves every relative import to a file of src/', () => {
    const known = new Set(files);
    assert.deepEqual(files.flatMap((f) => imports.get(f)!.local.filter((t) => !known.has(t)).map((t) => `${f} -> ${t}`)), []);
  });

  it('has no import cycle', () => {
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (f: string, path: string[]): void => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') return void cycles.push([...path.slice(path.indexOf(f)), f].join(' -> '));
      state.set(f, 'open');
      for (const t of imports.get(f)?.local ?? []) visit(t, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
    assert.deepEqual(cycles, []);
  });

  for (const [pkg, owner] of Object.entries(map.onlyImporter)) {
    it(`lets only ${owner} import ${pkg}`, () => {
      assert.deepEqual(files.filter((f) => imports.get(f)!.packages.some((p) => p === pkg || p.startsWith(`${pkg}/`))), [owner]);
    });
  }
});
