import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

/**
 * The page served by `headswap serve`. Built into the package's dist/web (shipped in the npm
 * package), with every asset local: onnxruntime-web's wasm is emitted next to the scripts
 * because its loader names it with `new URL(..., import.meta.url)`.
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  publicDir: false,
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // onnxruntime-web's wasm (about 14 MB) is loaded only when "run in the browser" is on.
    chunkSizeWarningLimit: 1024,
  },
});
