/** `headswap/explain`: what the backbone's layers respond to, and why a trained model says what it says, on your own photo. */
export { explainImage, explain, explainClasses, type ClassMaps, type ExplainOptions, type ExplainResult } from './explain.js';
export {
  ModelExplainer,
  type ActivationMap,
  type CamMethod,
  type ClassActivation,
  type MemberMap,
  type ModelExplainerOptions,
  type ModelExplanation,
  type ViewMap,
} from './cam.js';
export { camOverlay, camPng, camScale } from './cam-sheet.js';
