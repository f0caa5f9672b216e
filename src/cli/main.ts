import { Command, CommanderError } from 'commander';
import { HEADSWAP_VERSION } from '../util/versions.js';
import { registerBackbones } from './backbones.js';
import { registerCache } from './cache.js';
import { registerClassify } from './classify.js';
import { registerCompare } from './compare.js';
import { registerDemo } from './demo.js';
import { registerExplain } from './explain.js';
import { registerImport } from './import.js';
import { registerInspect } from './inspect.js';
import { reportError } from './output.js';
import { registerPredict } from './predict.js';
import { registerReport } from './report.js';
import { registerRuns } from './runs.js';
import { registerServe } from './serve.js';
import { registerTrain } from './train.js';
import { configureCommands } from './usage.js';

export function buildProgram(): Command {
  const program = new Command('headswap')
    .version(HEADSWAP_VERSION)
    .description('Train an image classifier from a few dozen photos per class in seconds on a CPU, by reusing a pretrained network.')
    .exitOverride();
  registerDemo(program);
  registerTrain(program);
  registerPredict(program);
  registerCompare(program);
  registerClassify(program);
  registerBackbones(program);
  registerInspect(program);
  registerRuns(program);
  registerCache(program);
  registerReport(program);
  registerExplain(program);
  registerImport(program);
  registerServe(program);
  program.addHelpText('after', '\nStart with:\n  headswap demo                 train and score on the bundled clothing photos\n  headswap train ./photos       photos/<class>/<image>, a few dozen per class');
  configureCommands(program);
  return program;
}

/** Runs the CLI; returns the exit code instead of exiting so it can be tested in-process. */
export async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv]);
    return 0;
  } catch (err) {
    // Commander has already printed its usage line (usage.ts).
    if (err instanceof CommanderError) return err.exitCode;
    return reportError(err);
  }
}
