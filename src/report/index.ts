/** `headswap/report`: the self-contained HTML report of a training run or a model folder (charts by Vega). */
export { renderReport } from './html.js';
export { writeReport } from './write.js';
export { reportFromTrain, reportFromModel } from './input.js';
export type { ReportInput } from './types.js';
