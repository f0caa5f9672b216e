import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CommanderError, type Command } from 'commander';
import { flagOf } from '../../src/cli/flags.js';
import { buildProgram, main } from '../../src/cli/main.js';
import { usageLine } from '../../src/cli/usage.js';
import { HeadswapError, OptionRef, msg, option } from '../../src/errors.js';
import { HEAD_DEFAULTS, HIDDEN_L2, MIN_DEFAULT_STEPS } from '../../src/head/train.js';
import { DEFAULT_PIXEL_LIMIT } from '../../src/image/preprocess.js';
import { train } from '../../src/pipeline/train.js';
import { packagePath } from '../../src/util/paths.js';
import { expectOneLine } from '../helpers/assert.js';
import { copySubset } from '../helpers/dataset.js';

function commands(cmd: Command): Command[] {
  return [cmd, ...cmd.commands.flatMap(commands)];
}

function command(path: string): Command {
  const found = path.split(' ').reduce<Command | undefined>((c, name) => c?.commands.find((s) => s.name() === name), buildProgram());
  assert.ok(found, path);
  return found;
}

const longFlags = (cmd: Command): string[] => cmd.options.map((o) => o.long ?? '');

/** The usage error commander prints for `args`, through the program's own output settings. */
async function usageError(...args: string[]): Promise<string> {
  const program = buildProgram();
  let written = '';
  for (const c of commands(program)) c.configureOutput({ writeErr: (s) => void (written += s), writeOut: () => undefined });
  await assert.rejects(program.parseAsync(['node', 'headswap', ...args]), CommanderError);
  return written;
}

/** One help entry per option: its flags and its whole (unwrapped) description. */
function helpEntries(help: string): Map<string, string> {
  const entries = new Map<string, string>();
  let current: string | undefined;
  for (const line of help.split('\n')) {
    const start = /^ {2}(?:-\w, )?(--[\w-]+)/.exec(line);
    if (start) entries.set((current = start[1]!), line.trim());
    else if (current && /^ {6,}\S/.test(line)) entries.set(current, `${entries.get(current)} ${line.trim()}`);
    else current = undefined;
  }
  return entries;
}

/** What `main` writes to stderr for `args`, run in-process; and its exit code. */
async function runCli(args: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array): boolean => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await main(['node', 'headswap', ...args]), stderr };
  } finally {
    process.stderr.write = write;
  }
}

describe('messages name options the way the reader writes them', () => {
  it('a library message spells options as code, the CLI as flags', () => {
    const e = new HeadswapError(msg`photos.model: already exists; choose another ${option('out')} or pass ${option('force', true)} to replace it`);
    assert.equal(e.message, 'photos.model: already exists; choose another out or pass force: true to replace it');
    assert.equal(e.spell(flagOf), 'photos.model: already exists; choose another --out or pass --force to replace it');
    assert.deepEqual(
      e.options.map((o) => o.path),
      ['out', 'force'],
    );
    const size = option('backbone.preprocessing.size', [224, 224]);
    assert.equal(String(size), 'backbone: { preprocessing: { size: [224, 224] } }');
    assert.equal(flagOf(size), '--size 224x224');
    assert.equal(flagOf(option('head.learningRate', 0.1)), '--lr 0.1');
    assert.equal(flagOf(option('valPct', 60)), '--val-pct 60');
    assert.equal(flagOf(option('backbone.mean', [1, 2, 3])), '--mean 1,2,3');
    assert.equal(String(option('backbone.feature', 'conv')), "backbone: { feature: 'conv' }");
    // A clause chosen at run time keeps its options.
    const clause = msg`or give ${option('testDir')}`;
    const nested = new HeadswapError(msg`no test photos; add photos ${clause}`);
    assert.equal(nested.message, 'no test photos; add photos or give testDir');
    assert.equal(nested.spell(flagOf), 'no test photos; add photos or give --test-dir');
    // A plain message has no options and reads the same everywhere.
    const plain = new HeadswapError('x.jpg: not an image');
    assert.equal(plain.spell(flagOf), plain.message);
    assert.equal(plain.options.length, 0);
  });

  it('every option a library message names is a flag of some command', () => {
    const flags = new Set(commands(buildProgram()).flatMap(longFlags));
    // The option paths the library's messages name, read from its source.
    const src = packagePath('src');
    const files = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts') && !f.startsWith('cli'));
    const paths = new Set<string>();
    for (const f of files) {
      const code = readFileSync(join(src, f), 'utf8');
      for (const m of code.matchAll(/\boption\('([\w.]+)'/g)) paths.add(m[1]!);
      // A folder's option, passed down for its errors (scanDataset's `option`).
      for (const m of code.matchAll(/\boption: '(\w+)'/g)) paths.add(m[1]!);
    }
    assert.ok(paths.size >= 10, [...paths].join(', '));
    for (const p of paths) {
      const flag = flagOf(new OptionRef(p)).split(' ')[0]!;
      assert.ok(flags.has(flag), `${p} is spelled ${flag}, which no command has`);
    }
  });

  it('usage errors are one headswap line naming the flag, its value and the help', async () => {
    assert.equal(await usageError('train', 'photos', '--epochs', '-3'), "headswap: --epochs -3 is not a whole number ≥ 1; see 'headswap train --help'\n");
    assert.equal(await usageError('train', 'photos', '--dropout', '2'), "headswap: --dropout 2 is not a number from 0 to 0.95; see 'headswap train --help'\n");
    assert.equal(await usageError('train', 'photos', '--resize', 'zoom'), "headswap: --resize zoom is not one of crop, squash, pad; see 'headswap train --help'\n");
    assert.equal(await usageError('predict', 'm', 'a.jpg', '--scale', '0'), "headswap: --scale 0 is not a number > 0; see 'headswap predict --help'\n");
    assert.equal(await usageError('runs', 'diff', '1', 'two'), "headswap: <b> two is not a whole number ≥ 1; see 'headswap runs diff --help'\n");
    assert.equal(await usageError('classify'), "headswap: missing required argument 'paths'; see 'headswap classify --help'\n");
    assert.equal(await usageError('trian'), "headswap: unknown command 'trian' (did you mean train?); see 'headswap --help'\n");
    assert.equal(await usageError('train', 'photos', '--top'), "headswap: --top needs a value: --top <k>; see 'headswap train --help'\n");
    assert.equal(await usageError('train', 'a', 'b'), "headswap: too many arguments for 'train': expected 1 argument but got 2; see 'headswap train --help'\n");
    assert.equal(await usageError('cache', 'prune', '--frob'), "headswap: unknown option '--frob'; see 'headswap cache prune --help'\n");
    // Commander's own two-line form becomes one line.
    assert.equal(usageLine("error: unknown option '--seeds'\n(Did you mean --seed?)", 'train'), "headswap: unknown option '--seeds' (did you mean --seed?); see 'headswap train --help'");
  });

  it('train --help groups its options and shows every default, from where train() decides it', () => {
    const cmd = command('train');
    const help = cmd.helpInformation();
    const headings = help.split('\n').filter((l) => /^\S.*:$/.test(l));
    assert.deepEqual(headings, ['Arguments:', 'Data options:', 'Backbone options:', 'Head options:', 'Quality options:', 'Output options:', 'Options:']);
    const entries = helpEntries(help);
    const defaults: Record<string, readonly (string | number)[]> = {
      '--epochs': [HEAD_DEFAULTS.epochs, MIN_DEFAULT_STEPS],
      '--lr': [HEAD_DEFAULTS.learningRate],
      '--l2': [HEAD_DEFAULTS.l2, HIDDEN_L2],
      '--dropout': [HEAD_DEFAULTS.dropout],
      '--batch-size': [HEAD_DEFAULTS.batchSize],
      '--label-smoothing': [HEAD_DEFAULTS.labelSmoothing],
      '--resize': ['crop'],
      '--pixel-limit': [DEFAULT_PIXEL_LIMIT],
    };
    for (const [flag, values] of Object.entries(defaults)) {
      const entry = entries.get(flag) ?? '';
      const shown = /default: (.*)\)$/.exec(entry)?.[1] ?? '';
      for (const v of values) assert.match(shown, new RegExp(`(^|[^\\d.])${String(v).replace('.', '\\.')}([^\\d.]|$)`), `${flag}: ${entry}`);
      // The library decides these: the CLI passes nothing unless the flag is given.
      assert.equal(cmd.options.find((o) => o.long === flag)?.defaultValue, undefined, flag);
    }
    // Every option that takes a value says its default (or that it is off).
    for (const o of cmd.options.filter((x) => x.required)) {
      assert.match(entries.get(o.long!) ?? '', /default: /, o.long);
    }
  });

  it('no command offers an option that means nothing there', () => {
    assert.ok(longFlags(command('train')).includes('--feature'));
    assert.ok(!longFlags(command('classify')).includes('--feature'), 'classify uses the whole network, no cut');
    const demo = longFlags(command('demo'));
    for (const f of ['--test-dir', '--test-pct', '--force']) assert.ok(!demo.includes(f), `demo has its own test photos and always replaces its output: ${f}`);
    assert.deepEqual(longFlags(command('inspect')), ['--feature', '--json']);
  });
});

describe('library errors name options as code; the CLI names the flags', () => {
  let dir: string;
  let data: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'headswap-messages-'));
    data = join(dir, 'photos');
    await copySubset('train', ['hat', 'shoes'], 3, data);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const noFlags = (pattern: RegExp): RegExp => new RegExp(`^(?!.*--).*${pattern.source}`);

  it('an output folder that exists', async () => {
    const out = join(dir, 'taken');
    await mkdir(out);
    await expectOneLine(train({ data, out, cacheDir: join(dir, 'cache') }), noFlags(/taken: already exists; choose another out or pass force: true to replace it$/));
    const cli = await runCli(['train', data, '--out', out, '--cache-dir', join(dir, 'cache')]);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /^headswap: .*taken: already exists; choose another --out or pass --force to replace it\n$/);
  });

  it('a --test-dir that does not exist', async () => {
    const testDir = join(dir, 'no-such-test');
    await expectOneLine(train({ data, testDir, out: false }), noFlags(/testDir '.*no-such-test' does not exist; check the path$/));
    const cli = await runCli(['train', data, '--test-dir', testDir]);
    assert.match(cli.stderr, /^headswap: --test-dir '.*no-such-test' does not exist; check the path\n$/);
  });

  it('--test-pct 0 without a test folder', async () => {
    await expectOneLine(train({ data, testPct: 0 }), noFlags(/testPct: 0 leaves no photos to score the classifier on; give a separate testDir or a testPct above 0$/));
    const cli = await runCli(['train', data, '--test-pct', '0']);
    assert.match(cli.stderr, /^headswap: --test-pct 0 leaves no photos to score the classifier on; give a separate --test-dir or a --test-pct above 0\n$/);
  });

  it('photos without class sub-folders: what was found and what to do', async () => {
    const flat = join(dir, 'flat');
    await mkdir(flat);
    const images = readdirSync(join(data, 'hat'));
    for (const f of images) await copyFile(join(data, 'hat', f), join(flat, f));
    await expectOneLine(
      train({ data: flat, out: false }),
      new RegExp(`'.*flat' holds ${images.length} image\\(s\\) but no class sub-folders; put each class's photos in a sub-folder named after the class: '.*flat/cat/\\*\\.jpg', '.*flat/dog/\\*\\.jpg'$`),
    );
    const empty = join(dir, 'empty');
    await mkdir(empty);
    await expectOneLine(train({ data: empty, out: false }), /'.*empty' holds no images and no class sub-folders; put each class's photos/);
  });
});
