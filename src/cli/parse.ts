import { InvalidArgumentError } from 'commander';

/** Commander parsers: a bad value is a one-line usage error naming the option's value. */
export function int(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`'${value}' is not a whole number from ${min} to ${max}.`);
    return n;
  };
}

export function num(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`'${value}' is not a number from ${min} to ${max}.`);
    return n;
  };
}
