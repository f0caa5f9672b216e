#!/usr/bin/env node
import { main } from '../dist/cli/main.js';

// A reader that stops early (`headswap predict ... | head`) is not an error: stop quietly.
process.stdout.on('error', (err) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(process.exitCode ?? 0);
});
process.exitCode = await main(process.argv);
