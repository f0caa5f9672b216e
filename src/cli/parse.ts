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

/** A range in words: "≥ 1", "from 0 to 0.5". */
function range(min: number, max: number): string {
  return max === Infinity ? `≥ ${min}` : `from ${min} to ${max}`;
}
