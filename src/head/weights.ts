/** Weights of a trained head: optional hidden ReLU layer, then a linear layer to the classes. */
export interface HeadWeights {
  /** Feature standardization: (x - mean) / std, per dimension. */
  readonly mean: Float32Array;
  readonly std: Float32Array;
  /** Dense layers, row-major `[in, out]` kernels. */
  readonly layers: readonly { readonly kernel: Float32Array; readonly bias: Float32Array; readonly inputs: number; readonly units: number }[];
}
