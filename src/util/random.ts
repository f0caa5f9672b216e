/**
 * Seeded randomness for head training. Everything random in training (initialization, shuffling,
 * dropout masks) comes from here rather than Math.random or TensorFlow's own RNG, so a seed fully
 * determines the result on every platform.
 */

/**
 * mulberry32: a tiny 32-bit generator with good statistical quality for this use, returning
 * uniform floats in [0, 1). The seed is first scrambled with a splitmix32 step so that nearby
 * seeds (0, 1, 2...) start from unrelated states.
 */
export function createRng(seed: number): () => number {
  let h = (Math.trunc(seed) >>> 0) + 0x9e3779b9;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  let state = (h ^ (h >>> 16)) >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A standard normal sample (Box-Muller; 1 - u keeps the log argument in (0, 1]). */
export function normal(rng: () => number): number {
  const u = 1 - rng();
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Fisher-Yates shuffle of `items`, in place; returns `items`. */
export function shuffleInPlace<T extends { length: number; [i: number]: unknown }>(items: T, rng: () => number): T {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = items[i];
    items[i] = items[j];
    items[j] = tmp;
  }
  return items;
}
