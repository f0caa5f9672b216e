import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { HeadswapError, describeError } from '../../errors.js';
import { parseModelJson, type TfjsArtifacts } from './manifest.js';
import { errnoCode } from '../../util/fs.js';

/**
 * The networks the nsfwjs package ships. nsfwjs fine-tuned them for content moderation, so their
 * features transfer poorly to everyday photos (45-52% top-1 on clothing7, against 78.7% for
 * headswap's default MobileNetV2).
 */
export const NSFWJS_MODELS = ['mobilenet_v2', 'mobilenet_v2_mid', 'inception_v3'] as const;
export type NsfwjsModel = (typeof NSFWJS_MODELS)[number];

/** nsfwjs's five classes in output order (its nsfw_classes.js). */
export const NSFWJS_LABELS = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'] as const;

/** Folder of one of the nsfwjs networks inside the installed nsfwjs package. */
export function nsfwjsModelDir(model: NsfwjsModel): string {
  let main: string;
  try {
    main = createRequire(import.meta.url).resolve('nsfwjs');
  } catch {
    throw new HeadswapError(`the nsfwjs package is not installed; run 'npm install nsfwjs' to import its '${model}' network`);
  }
  // main is <pkg>/dist/cjs/index.js
  return join(dirname(dirname(main)), 'models', model);
}

/**
 * Reads an nsfwjs model folder: `model.min.js` and `<shard>.min.js` files, each a browserify
 * bundle whose single module exports the model.json object or one shard as a base64 string.
 * The bundles are parsed as data, never run.
 */
export async function readNsfwjsFolder(dir: string, origin: string = dir): Promise<TfjsArtifacts> {
  const modelFile = join(dir, 'model.min.js');
  const modelJsonBytes = new TextEncoder().encode(JSON.stringify(unwrapBundle(await readText(modelFile), modelFile)));
  const modelJson = parseModelJson(modelJsonBytes, modelFile);
  const shards = new Map<string, Uint8Array>();
  for (const group of modelJson.weightsManifest) {
    for (const p of group.paths) {
      const file = join(dir, `${p}.min.js`);
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') continue; // reported as a missing shard, by name
        throw new HeadswapError(`${file}: cannot read (${describeError(err)})`);
      }
      const payload = unwrapBundle(text, file);
      if (typeof payload !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(payload)) throw new HeadswapError(`${file}: the bundle does not hold a base64 weight shard`);
      shards.set(p, new Uint8Array(Buffer.from(payload, 'base64')));
    }
  }
  return { origin, modelJsonName: modelFile, modelJsonBytes, modelJson, shards, shardName: (p) => join(dir, `${p}.min.js`), labels: [...NSFWJS_LABELS] };
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new HeadswapError(errnoCode(err) === 'ENOENT' ? `${file} not found; give an nsfwjs model folder (dist/models/<name>)` : `${file}: cannot read (${describeError(err)})`);
  }
}

/** The value of `module.exports = <literal>` in a browserify bundle's module 1. */
export function unwrapBundle(text: string, name: string): unknown {
  const m = /\{1:\[function\(\w*,(\w+),\w*\)\{\1\.exports=/.exec(text);
  if (!m) throw new HeadswapError(`${name}: not an nsfwjs model bundle (no 'module.exports=' of module 1)`);
  const p = new LiteralParser(text, m.index + m[0].length, name);
  const value = p.value();
  p.expect('}');
  return value;
}

/** A parser for the JavaScript literals a minifier writes: objects, arrays, strings, numbers, !0/!1, null. */
class LiteralParser {
  constructor(private readonly s: string, private i: number, private readonly name: string) {}

  private fail(what: string): never {
    throw new HeadswapError(`${this.name}: cannot parse the bundled data at offset ${this.i} (${what})`);
  }

  private skip(): void {
    while (/\s/.test(this.s[this.i] ?? '')) this.i++;
  }

  expect(ch: string): void {
    this.skip();
    if (this.s[this.i] !== ch) this.fail(`expected '${ch}'`);
    this.i++;
  }

  value(): unknown {
    this.skip();
    const c = this.s[this.i];
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (c === '"' || c === "'") return this.string();
    if (c === '!') {
      const d = this.s[this.i + 1];
      if (d !== '0' && d !== '1') this.fail('expected !0 or !1');
      this.i += 2;
      return d === '0';
    }
    const word = /^(?:true|false|null|void 0)/.exec(this.s.slice(this.i, this.i + 6))?.[0];
    if (word) {
      this.i += word.length;
      return word === 'true' ? true : word === 'false' ? false : word === 'null' ? null : undefined;
    }
    const num = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/.exec(this.s.slice(this.i, this.i + 40))?.[0];
    if (num) {
      this.i += num.length;
      return Number(num);
    }
    return this.fail('unexpected character');
  }

  private object(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    this.i++;
    this.skip();
    if (this.s[this.i] === '}') {
      this.i++;
      return out;
    }
    for (;;) {
      this.skip();
      const c = this.s[this.i];
      let key: string;
      if (c === '"' || c === "'") key = this.string();
      else {
        key = /^[A-Za-z_$0-9][\w$]*/.exec(this.s.slice(this.i, this.i + 200))?.[0] ?? this.fail('expected a key');
        this.i += key.length;
      }
      this.expect(':');
      out[key] = this.value();
      this.skip();
      const sep = this.s[this.i++];
      if (sep === '}') return out;
      if (sep !== ',') this.fail("expected ',' or '}'");
    }
  }

  private array(): unknown[] {
    const out: unknown[] = [];
    this.i++;
    this.skip();
    if (this.s[this.i] === ']') {
      this.i++;
      return out;
    }
    for (;;) {
      out.push(this.value());
      this.skip();
      const sep = this.s[this.i++];
      if (sep === ']') return out;
      if (sep !== ',') this.fail("expected ',' or ']'");
    }
  }

  private string(): string {
    const q = this.s[this.i]!;
    const start = this.i + 1;
    let end = start;
    let escaped = false;
    // indexOf keeps multi-megabyte base64 shards fast; a quote preceded by an odd run of backslashes is escaped.
    for (;;) {
      end = this.s.indexOf(q, end);
      if (end < 0) this.fail('unterminated string');
      let k = end - 1;
      while (this.s[k] === '\\') k--;
      if ((end - 1 - k) % 2 === 0) break;
      escaped = true;
      end++;
    }
    const raw = this.s.slice(start, end);
    this.i = end + 1;
    if (!escaped && !raw.includes('\\')) return raw;
    try {
      return JSON.parse(`"${q === '"' ? raw : raw.replace(/\\'/g, "'").replace(/"/g, '\\"')}"`) as string;
    } catch {
      return this.fail('unsupported escape in string');
    }
  }
}
