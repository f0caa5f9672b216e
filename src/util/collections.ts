/** Appends `value` to the list `map` holds under `key`, starting the list when there is none. */
export function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/**
 * Disjoint sets over 0..n-1 with path halving. A union keeps the smaller root, so each set's
 * root is its smallest member whatever the order of unions.
 */
export function unionFind(n: number): { find(i: number): number; union(a: number, b: number): void } {
  const parent = Int32Array.from({ length: n }, (_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]!]!;
      i = parent[i]!;
    }
    return i;
  };
  return {
    find,
    union(a, b) {
      const [ra, rb] = [find(a), find(b)];
      parent[Math.max(ra, rb)] = Math.min(ra, rb);
    },
  };
}
