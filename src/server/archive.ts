import { createReadStream } from 'node:fs';
import { Zip, ZipDeflate } from 'fflate';

/**
 * A zip of `files` (names inside `dir`) under the folder name `prefix`, produced while it is
 * read: one file chunk in memory at a time, and nothing is compressed ahead of the reader.
 */
export async function* zipFiles(dir: string, files: readonly string[], prefix: string): AsyncGenerator<Uint8Array> {
  const ready: Uint8Array[] = [];
  let failure: Error | null = null;
  // fflate's synchronous classes call back during push(), so output collects in `ready`.
  const zip = new Zip((err, chunk) => {
    if (err) failure = err;
    else ready.push(chunk);
  });
  const drain = function* (): Generator<Uint8Array> {
    if (failure) throw failure;
    while (ready.length > 0) yield ready.shift()!;
  };
  for (const name of files) {
    const entry = new ZipDeflate(`${prefix}/${name}`, { level: 6 });
    zip.add(entry);
    for await (const chunk of createReadStream(`${dir}/${name}`)) {
      entry.push(chunk as Buffer);
      yield* drain();
    }
    entry.push(new Uint8Array(0), true);
    yield* drain();
  }
  zip.end();
  yield* drain();
}
