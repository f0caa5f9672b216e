/** A value of an option as a message quotes it. */
export type OptionValue = string | number | boolean | readonly number[];

/**
 * An option named inside a message: its path as a library caller writes it (`out`, `testDir`,
 * `backbone.feature`, `head.learningRate`) and, when the message is about one, its value. The
 * library's message spells it as code (`force: true`); the CLI spells it as its flag (`--force`).
 */
export class OptionRef {
  constructor(
    readonly path: string,
    readonly value?: OptionValue,
  ) {}

  /** As a library caller writes it: `out`, `force: true`, `backbone: { preprocessing: { size: [224, 224] } }`. */
  toString(): string {
    if (this.value === undefined) return this.path;
    const keys = this.path.split('.');
    const last = `${keys.pop()}: ${literal(this.value)}`;
    return keys.reduceRight((inner, key) => `${key}: { ${inner} }`, last);
  }
}

function literal(value: OptionValue): string {
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'object') return `[${value.join(', ')}]`;
  return String(value);
}

/** `option('cv', 3)`: an option, for a message built with `msg`. */
export function option(path: string, value?: OptionValue): OptionRef {
  return new OptionRef(path, value);
}

/** A message with the options it names kept apart, so each front end can spell them its own way. */
export type MessageParts = readonly (string | OptionRef)[];

const isParts = (v: unknown): v is MessageParts => Array.isArray(v) && v.every((p) => typeof p === 'string' || p instanceof OptionRef);

/**
 * Tagged template for a HeadswapError message: `` msg`${out}: exists; choose another ${option('out')}` ``.
 * An OptionRef stays a part, as do the parts of a nested `msg` (a clause chosen at run time).
 */
export function msg(strings: TemplateStringsArray, ...values: readonly unknown[]): MessageParts {
  return strings.flatMap((s, i) => {
    if (i >= values.length) return [s];
    const v = values[i];
    return [s, ...(v instanceof OptionRef ? [v] : isParts(v) ? v : [String(v)])];
  });
}

/**
 * An error meant for the user: one line that names the file (or thing) and the fix.
 * The CLI prints it alone, without a stack trace, and exits non-zero. `message` names options as
 * a library caller writes them; `spell` lets the CLI name them as flags.
 */
export class HeadswapError extends Error {
  override readonly name = 'HeadswapError';
  readonly parts: MessageParts;

  constructor(message: string | MessageParts, options?: { cause?: unknown }) {
    const parts = typeof message === 'string' ? [message] : message;
    super(spellParts(parts, String), options);
    this.parts = parts;
  }

  /** The options the message is about. */
  get options(): OptionRef[] {
    return this.parts.filter((p): p is OptionRef => p instanceof OptionRef);
  }

  /** The message with each option spelled by `spellOption` (the CLI: as its flag). */
  spell(spellOption: (o: OptionRef) => string): string {
    return spellParts(this.parts, spellOption);
  }
}

/**
 * Receives each warning: `message` names options as a library caller writes them, `parts` keeps
 * them apart so a front end can spell them its own way (`spellParts(parts, flagOf)` in the CLI).
 */
export type WarningCallback = (message: string, parts: MessageParts) => void;

/** A message with each option spelled by `spellOption`. */
export function spellParts(parts: MessageParts, spellOption: (o: OptionRef) => string): string {
  return parts.map((p) => (typeof p === 'string' ? p : spellOption(p))).join('');
}

/** A short description of any thrown value, for wrapping low-level errors into one line. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? String(err);
  return String(err);
}

/**
 * A file-system error as "CODE: description" without the syscall and path Node appends
 * (", open '/x/y.jpg'"), for messages that already name the file.
 */
export function describeFsError(err: unknown): string {
  const message = describeError(err);
  return (err as NodeJS.ErrnoException | null)?.code ? message.replace(/, \w+ '.*'$/, '') : message;
}
