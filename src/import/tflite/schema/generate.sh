#!/usr/bin/env bash
# Regenerates the TypeScript accessors of tflite.fbs and metadata.fbs (npm run gen:tflite-schema).
# Needs flatc 2.0.8 (Debian: apt-get install flatbuffers-compiler). The output is committed, so
# building headswap does not need flatc.
set -euo pipefail
cd "$(dirname "$0")"
rm -rf tflite ./*_generated.ts
flatc --ts --gen-object-api -o . tflite.fbs metadata.fbs
# headswap is ESM with NodeNext resolution: relative imports need their .js extension.
sed -i -E "s#(from '\.{1,2}/[^']*)'#\1.js'#" tflite/*.ts ./*_generated.ts
