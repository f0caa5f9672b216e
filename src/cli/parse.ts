import { InvalidArgumentError } from 'commander';

/**
 * Commander parsers. A bad value throws "not <what is wanted>", which the usage error (usage.ts)
 * completes to one line naming the flag: "--epochs -3 is not a whole number ≥ 1".
 */
export function int(min: number, max = Infinity): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`not a whole number ${range(min, max)}`);
    return n;
  };
}

export function num(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`not a number ${range(min, max)}`);
    return n;
  };
}

/** A number above 0 (a scale factor): no bound but the sign is worth saying. */
export function positive(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('not a number > 0');
  return n;
}

/** `--size 224` or `224x224` (height x width): two whole numbers above 0. */
export function size(value: string): [number, number] {
  const m = /^(\d+)x(\d+)$/i.exec(value) ?? /^(\d+)$/.exec(value);
  const h = Number(m?.[1]);
  const w = Number(m?.[2] ?? m?.[1]);
  if (!(h > 0 && w > 0)) throw new InvalidArgumentError('not a size like 224 or 224x224 (height x width)');
  return [h, w];
}

/** A range in words: "≥ 1", "from 0 to 0.5". */
function range(min: number, max: number): string {
  return max === Infinity ? `≥ ${min}` : `from ${min} to ${max}`;
}
