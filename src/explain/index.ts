/** `headswap/explain`: what the backbone's layers respond to, on your own photo. */
export { explainImage, explain, type ExplainOptions, type ExplainResult } from './explain.js';
