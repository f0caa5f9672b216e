import { Command } from 'commander';
import { registerImport } from '../../src/cli/import.js';

/**
 * Runs `headswap import <args>` in this process with `$HEADSWAP_CACHE` set to `cacheDir`, and
 * returns what it printed; stdout and the variable are restored however the command ends.
 * `during` runs while both are still set (e.g. a second call that must be refused).
 */
export async function runImport(args: readonly string[], cacheDir: string, during?: (program: Command) => Promise<void>): Promise<string> {
  const program = new Command('headswap').exitOverride();
  registerImport(program);
  const writes: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => writes.push(s) > 0) as typeof process.stdout.write;
  const env = process.env.HEADSWAP_CACHE;
  process.env.HEADSWAP_CACHE = cacheDir;
  try {
    await program.parseAsync(['node', 'headswap', 'import', ...args]);
    await during?.(program);
  } finally {
    process.stdout.write = write;
    if (env === undefined) delete process.env.HEADSWAP_CACHE;
    else process.env.HEADSWAP_CACHE = env;
  }
  return writes.join('');
}
