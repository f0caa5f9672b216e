import { unionFind } from './collections.js';

/**
 * Cosine distances between every pair of vectors (1 - cosine similarity), as an n x n matrix in
 * row order. A zero vector is at distance 1 from everything (nothing to compare).
 */
export function cosineDistances(vectors: readonly Float32Array[]): Float64Array {
  const n = vectors.length;
  const norms = vectors.map((v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0)));
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const a = vectors[i]!;
    for (let j = i + 1; j < n; j++) {
      const b = vectors[j]!;
      let dot = 0;
      for (let t = 0; t < a.length; t++) dot += a[t]! * b[t]!;
      const denom = norms[i]! * norms[j]!;
      const d = denom > 0 ? Math.min(2, Math.max(0, 1 - dot / denom)) : 1;
      out[i * n + j] = d;
      out[j * n + i] = d;
    }
  }
  return out;
}

/**
 * Average-linkage agglomerative clustering cut at `threshold`: two clusters join while the mean
 * distance between their members is at most `threshold`. Average linkage rather than single
 * linkage because single linkage chains: a slow pan across a room links its two ends. Uses the
 * nearest-neighbour-chain algorithm (O(n^2) time and memory, exact for average linkage, which is
 * reducible), so a class of a few thousand photos stays cheap. `distances` is an n x n matrix as
 * cosineDistances gives; it is consumed (overwritten). Returns each item's cluster as the
 * smallest index among its members, so the result does not depend on merge order.
 */
export function averageLinkage(distances: Float64Array, n: number, threshold: number): Int32Array {
  const d = distances;
  const size = new Float64Array(n).fill(1);
  const active = new Uint8Array(n).fill(1);
  const sets = unionFind(n);
  const chain: number[] = [];
  let remaining = n;
  while (remaining > 1) {
    if (chain.length === 0) chain.push(active.indexOf(1));
    const top = chain[chain.length - 1]!;
    const prev = chain.length > 1 ? chain[chain.length - 2]! : -1;
    // Nearest active neighbour of top; on ties the previous chain element wins, which is what
    // keeps the chain from cycling.
    let best = prev;
    let bestD = prev >= 0 ? d[top * n + prev]! : Infinity;
    for (let j = 0; j < n; j++) {
      if (!active[j] || j === top) continue;
      const dj = d[top * n + j]!;
      if (dj < bestD) {
        bestD = dj;
        best = j;
      }
    }
    if (best !== prev) {
      chain.push(best);
      continue;
    }
    // top and prev are each other's nearest: merge prev into top (Lance-Williams, average).
    chain.length -= 2;
    if (bestD <= threshold) sets.union(top, prev);
    const [si, sj] = [size[top]!, size[prev]!];
    for (let k = 0; k < n; k++) {
      if (!active[k] || k === top || k === prev) continue;
      const v = (si * d[top * n + k]! + sj * d[prev * n + k]!) / (si + sj);
      d[top * n + k] = v;
      d[k * n + top] = v;
    }
    size[top] = si + sj;
    active[prev] = 0;
    remaining--;
  }
  return Int32Array.from({ length: n }, (_, i) => sets.find(i));
}
