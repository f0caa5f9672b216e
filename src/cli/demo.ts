import type { Command } from 'commander';
import { packagePath } from '../util/paths.js';
import { addTrainOptions, runTrain } from './train.js';

/** The bundled demo set: 7 clothing classes, 10-33 training photos each, like the original demo. */
export const DEMO_TRAIN = packagePath('data', 'clothing7', 'train');
export const DEMO_TEST = packagePath('data', 'clothing7', 'test');

export function registerDemo(program: Command): void {
  addTrainOptions(
    program.command('demo').description('train on the bundled clothing7 photos (7 classes, 10-33 each) and score on its separate test photos, offline'),
    'clothing7.model',
  ).action((flags: Parameters<typeof runTrain>[1]) => runTrain(DEMO_TRAIN, { ...flags, testDir: DEMO_TEST, force: true }));
}
