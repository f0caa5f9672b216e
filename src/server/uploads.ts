import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyRequest } from 'fastify';
import { describeError } from '../errors.js';
import { RequestError, sizeText } from './errors.js';
import { EXTENSIONS, checkImage, displayName } from './images.js';
import type { JobClass } from './api-types.js';
import { className, photoFileName } from './names.js';
import type { ServerLimits } from './options.js';
import { byCodePoint } from '../util/text.js';
import { DEFAULT_QUALITY, QUALITY_CHOICES, type QualityChoice } from '../pipeline/quality.js';

export interface UploadedImage {
  readonly name: string;
  readonly data: Buffer;
}

/** A multipart failure as the client's fault: a limit it went over, or a body that is not valid multipart. */
function uploadError(err: unknown, limits: ServerLimits, maxFiles: number, file?: string): unknown {
  const e = err as { code?: unknown; statusCode?: unknown };
  if (e.code === 'FST_FILES_LIMIT' || e.code === 'FST_PARTS_LIMIT') return new RequestError(413, `too many files: at most ${maxFiles} per request`);
  if (e.code === 'FST_FIELDS_LIMIT') return new RequestError(413, 'too many form fields');
  if (e.code === 'FST_REQ_FILE_TOO_LARGE') return new RequestError(413, `${displayName(file ?? 'file')}: larger than the server's limit of ${sizeText(limits.maxImageBytes)} per image`);
  if (typeof e.statusCode === 'number') return err;
  // The parser's own errors (no boundary, cut-off body) carry no status: the body is malformed.
  return new RequestError(400, `malformed multipart/form-data body (${describeError(err)})`);
}

type Part = { readonly field: string; readonly value: string } | { readonly field: string; readonly filename: string; readonly data: Buffer };

/**
 * Ends an unfinished request body when its connection closes: Node leaves the request open when
 * the handler timeout has already answered 408, so the multipart reader would wait forever and a
 * job's upload folder would stay. A connection already gone is refused at once, since the reader
 * attached now would never hear of it.
 */
function endWithConnection(request: FastifyRequest): () => void {
  const { raw } = request;
  if (raw.destroyed || raw.socket.destroyed) throw new RequestError(400, 'the connection closed before the upload was complete');
  const onClose = (): void => {
    if (!raw.complete) raw.destroy();
  };
  raw.socket.once('close', onClose);
  return () => raw.socket.off('close', onClose);
}

/** The parts of a multipart body, each file read whole (one at a time, within the size limit). */
async function* parts(request: FastifyRequest, limits: ServerLimits, maxFiles: number): AsyncGenerator<Part> {
  const release = endWithConnection(request);
  try {
    for await (const part of request.parts({ limits: { fileSize: limits.maxImageBytes, files: maxFiles, fields: 10, fieldSize: 1000, parts: maxFiles + 10 } })) {
      if (part.type === 'field') {
        yield { field: part.fieldname, value: typeof part.value === 'string' ? part.value : '' };
        continue;
      }
      let data: Buffer;
      try {
        data = await part.toBuffer();
      } catch (err) {
        throw uploadError(err, limits, maxFiles, part.filename);
      }
      yield { field: part.fieldname, filename: part.filename, data };
    }
  } catch (err) {
    throw err instanceof RequestError ? err : uploadError(err, limits, maxFiles);
  } finally {
    release();
  }
}

/**
 * The images of a classify request: the raw body (one image, `image/*` or
 * `application/octet-stream`) or every file of a multipart form. Each is checked by content.
 */
export async function receiveImages(request: FastifyRequest, limits: ServerLimits, maxFiles: number): Promise<UploadedImage[]> {
  const images: UploadedImage[] = [];
  if (request.isMultipart()) {
    for await (const part of parts(request, limits, maxFiles)) {
      if ('data' in part) images.push({ name: part.filename || `image ${images.length + 1}`, data: part.data });
    }
  } else if (Buffer.isBuffer(request.body)) {
    images.push({ name: 'request body', data: request.body });
  } else {
    throw new RequestError(415, 'send the image as the request body (Content-Type image/* or application/octet-stream) or as multipart/form-data');
  }
  if (images.length === 0) throw new RequestError(400, 'no image in the request; attach one as a file field');
  if (images.length > maxFiles) throw new RequestError(413, `too many images: at most ${maxFiles} per request`);
  for (const image of images) await checkImage(image.name, image.data, limits.pixelLimit);
  return images;
}

export interface ReceivedJob {
  readonly name: string;
  readonly compare: boolean;
  readonly quality: QualityChoice;
  readonly classes: JobClass[];
}

function qualityOf(value: string): QualityChoice {
  const q = QUALITY_CHOICES.find((c) => c === value.trim());
  if (!q) throw new RequestError(400, `field 'quality' is ${displayName(value)}; use one of ${QUALITY_CHOICES.join(', ')}`);
  return q;
}

/** Each class needs a training, a validation and a test photo. */
const MIN_PHOTOS_PER_CLASS = 3;

/**
 * Reads a training job's form into `dir/photos/<class>/`: each file field's name is its class,
 * text fields `name` (the model's name), `compare` ("true" to add the comparison) and `quality`
 * (a `--quality` level, default 'auto'). Files are
 * checked by content and saved under names the server makes; the client's paths are never used.
 */
export async function receiveJob(request: FastifyRequest, dir: string, limits: ServerLimits): Promise<ReceivedJob> {
  if (!request.isMultipart()) throw new RequestError(415, 'send the job as multipart/form-data: one file field per photo, named by its class');
  let name = '';
  let compare = false;
  let quality: QualityChoice = DEFAULT_QUALITY;
  let bytes = 0;
  let index = 0;
  const counts = new Map<string, number>();
  for await (const part of parts(request, limits, limits.maxJobImages)) {
    if (!('data' in part)) {
      if (part.field === 'name') name = part.value.trim().slice(0, 100);
      else if (part.field === 'compare') compare = part.value === 'true' || part.value === '1' || part.value === 'on';
      else if (part.field === 'quality') quality = qualityOf(part.value);
      continue;
    }
    const { data } = part;
    const label = className(part.field);
    if (!counts.has(label) && counts.size >= limits.maxJobClasses) throw new RequestError(413, `too many classes: at most ${limits.maxJobClasses}`);
    bytes += data.length;
    if (bytes > limits.maxJobBytes) throw new RequestError(413, `the photos add up to more than the server's limit of ${sizeText(limits.maxJobBytes)} per job`);
    const kind = await checkImage(part.filename || 'photo', data, limits.pixelLimit);
    const classDir = join(dir, 'photos', label);
    await mkdir(classDir, { recursive: true });
    await writeFile(join(classDir, photoFileName(index++, part.filename, EXTENSIONS[kind])), data);
    counts.set(label, (counts.get(label) ?? 0) + 1);
  }
  const classes = [...counts].map(([n, photos]) => ({ name: n, photos })).sort((a, b) => byCodePoint(a.name, b.name));
  if (classes.length < 2) throw new RequestError(400, `a classifier needs at least 2 classes; got ${classes.length}`);
  const few = classes.find((c) => c.photos < MIN_PHOTOS_PER_CLASS);
  if (few) throw new RequestError(400, `class ${displayName(few.name)} has ${few.photos} photo(s); give each class at least ${MIN_PHOTOS_PER_CLASS} (for training, validation and test)`);
  return { name: name || classes.map((c) => c.name).join(' vs ').slice(0, 100), compare, quality, classes };
}
