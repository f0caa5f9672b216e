import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { download, modelsDir } from '../../runtime/download.js';
import { HeadswapError, describeError } from '../../errors.js';
import { errnoCode, processAlive, sha256 } from '../../util/fs.js';
import { checkShards, isRecord, parseModelJson, type TfjsArtifacts } from './manifest.js';
import { readNsfwjsFolder } from './nsfwjs.js';

async function kind(path: string): Promise<'file' | 'dir' | undefined> {
  const s = await stat(path).catch(() => undefined);
  return s?.isDirectory() ? 'dir' : s?.isFile() ? 'file' : undefined;
}

/** Class names beside a model: labels.txt (one per line), else a Teachable Machine metadata.json. */
async function readLabels(dir: string): Promise<string[] | undefined> {
  const text = await readFile(join(dir, 'labels.txt'), 'utf8').catch(() => undefined);
  if (text !== undefined) return text.replace(/\s+$/, '').split(/\r?\n/).map((l) => l.trim());
  const meta = await readFile(join(dir, 'metadata.json'), 'utf8').catch(() => undefined);
  if (meta === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(meta);
  } catch (err) {
    throw new HeadswapError(`${join(dir, 'metadata.json')}: not valid JSON (${describeError(err)})`);
  }
  const labels = isRecord(json) ? json.labels : undefined;
  return Array.isArray(labels) && labels.every((l) => typeof l === 'string') ? labels : undefined;
}

/**
 * Reads a TF.js model from disk: a folder holding model.json (or nsfwjs's model.min.js bundles),
 * or the path of the model.json itself. Shards are read as listed; missing ones are reported by
 * name when the weights are checked.
 */
export async function readTfjsFolder(source: string, origin: string = source): Promise<TfjsArtifacts> {
  const path = resolve(source);
  const k = await kind(path);
  if (!k) throw new HeadswapError(`${path} not found; give a TF.js model folder, its model.json, or an http(s) URL of a model.json`);
  let modelFile = path;
  if (k === 'dir') {
    modelFile = join(path, 'model.json');
    if (!(await kind(modelFile))) {
      if (await kind(join(path, 'model.min.js'))) return readNsfwjsFolder(path, origin);
      throw new HeadswapError(`${path}: no model.json in this folder; give the folder of a TF.js model (model.json + weight shards)`);
    }
  }
  const dir = dirname(modelFile);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(modelFile);
  } catch (err) {
    throw new HeadswapError(`${modelFile}: cannot read (${describeError(err)})`);
  }
  const modelJson = parseModelJson(bytes, modelFile);
  const shards = new Map<string, Uint8Array>();
  for (const group of modelJson.weightsManifest) {
    for (const p of group.paths) {
      const file = join(dir, p);
      try {
        shards.set(p, await readFile(file));
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw new HeadswapError(`${file}: cannot read weight shard (${describeError(err)})`);
      }
    }
  }
  const labels = await readLabels(dir);
  return { origin, modelJsonName: modelFile, modelJsonBytes: bytes, modelJson, shards, shardName: (p) => join(dir, p), ...(labels ? { labels } : {}) };
}

/**
 * Fetches a TF.js model from an http(s) URL of its model.json (or of its folder):
 * model.json, then the shards it lists relative to it, then optional labels.txt / metadata.json. The files are
 * kept in `<cacheRoot>/models/tfjs-url-<sha256 of URL>/`, which is renamed into place only once
 * complete and checked, so a failed or truncated download leaves nothing behind and a second
 * import makes no request.
 */
/** The model.json URL of a TF.js source URL: a folder URL (Teachable Machine shares .../models/<id>/) means its model.json. */
function modelJsonUrl(url: string): URL {
  const parsed = new URL(url);
  if (!/\.json$/i.test(parsed.pathname)) parsed.pathname = `${parsed.pathname.replace(/\/?$/, '/')}model.json`;
  return parsed;
}

/** Where fetchTfjs keeps the files of a TF.js model URL (its presence means no download is needed). */
export function tfjsDownloadFolder(url: string, cacheRoot: string): string {
  return join(modelsDir(cacheRoot), `tfjs-url-${sha256(modelJsonUrl(url).href)}`);
}

export async function fetchTfjs(url: string, cacheRoot: string): Promise<TfjsArtifacts> {
  const parsed = modelJsonUrl(url);
  const modelUrl = parsed.href;
  // Like TF.js's http loader, every file gets model.json's query: TF Hub serves files only with ?tfjs-format=file.
  const sibling = (name: string): string => {
    const u = new URL(name, modelUrl);
    u.search = parsed.search;
    return u.href;
  };
  const models = modelsDir(cacheRoot);
  const folder = tfjsDownloadFolder(url, cacheRoot);
  if ((await kind(folder)) === 'dir') return withUrlNames(await readTfjsFolder(folder, url), modelUrl);
  // Not named like source.ts's temp files: its sweep removes files, and this is a folder.
  const tmp = join(models, `.${basename(folder)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(tmp, { recursive: true });
    await sweepStalePartials(models);
  } catch (err) {
    throw new HeadswapError(`cannot write the model cache ${models}: ${describeError(err)}; free disk space or set HEADSWAP_CACHE to a writable directory`, { cause: err });
  }
  try {
    await download(modelUrl, join(tmp, 'model.json'));
    const json = parseModelJson(await readFile(join(tmp, 'model.json')), modelUrl);
    for (const group of json.weightsManifest) {
      for (const p of group.paths) await download(sibling(p), join(tmp, p));
    }
    // Optional class names (labels.txt, or a Teachable Machine metadata.json): a model without them is still a model.
    for (const extra of ['labels.txt', 'metadata.json']) await download(sibling(extra), join(tmp, extra)).catch(() => undefined);
    const artifacts = withUrlNames(await readTfjsFolder(tmp, url), modelUrl);
    checkShards(artifacts);
    try {
      await rename(tmp, folder);
    } catch (err) {
      // Another process finished the same download first; its copy is as good as ours.
      if ((await kind(folder)) !== 'dir') throw err;
      await rm(tmp, { recursive: true, force: true });
      return withUrlNames(await readTfjsFolder(folder, url), modelUrl);
    }
    return artifacts;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    if (err instanceof HeadswapError) throw err;
    throw new HeadswapError(`cannot write the model cache ${models}: ${describeError(err)}; free disk space or set HEADSWAP_CACHE to a writable directory`, { cause: err });
  }
}

/** Removes download folders left by processes that died (Ctrl-C or kill skip the cleanup). */
async function sweepStalePartials(models: string): Promise<void> {
  for (const name of await readdir(models)) {
    const pid = /^\.tfjs-url-[0-9a-f]{64}\.partial-(\d+)-[0-9a-f]+$/.exec(name)?.[1];
    if (pid !== undefined && !processAlive(Number(pid))) await rm(join(models, name), { recursive: true, force: true });
  }
}

/** Errors about a downloaded model name its URLs, not the cache paths. */
function withUrlNames(a: TfjsArtifacts, modelUrl: string): TfjsArtifacts {
  return { ...a, modelJsonName: modelUrl, shardName: (p) => new URL(p, modelUrl).href };
}
