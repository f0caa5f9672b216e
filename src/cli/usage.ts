import { Help, Option, type Command } from 'commander';

/** A value in a message: as typed when it is one plain word, quoted otherwise. */
function quoteValue(value: string): string {
  return /^[\w.,:/+=@-]+$/.test(value) ? value : `'${value}'`;
}

/** "--epochs -3 is not a whole number ≥ 1" from a parser's "not …", else "--x v: reason". */
function badValue(name: string, value: string, reason: string): string {
  const why = reason.replace(/\.$/, '').replace(/^Allowed choices are /, 'not one of ');
  return why.startsWith('not ') ? `${name} ${quoteValue(value)} is ${why}` : `${name} ${quoteValue(value)}: ${why}`;
}

/**
 * Commander's usage error as headswap's one line: its own prefix, the flag and value named, and
 * the help to read. "error: option '--epochs <n>' argument '-3' is invalid. not a whole number ≥ 1."
 * becomes "headswap: --epochs -3 is not a whole number ≥ 1; see 'headswap train --help'".
 */
export function usageLine(message: string, command: string): string {
  let line = message.trim().replace(/^error: /, '');
  const option = /^option '(?:-\w, )?(-[\w-]+)[^']*' argument '(.*)' is invalid\. (.*)$/s.exec(line);
  const argument = /^command-argument value '(.*)' is invalid for argument '([^']*)'\. (.*)$/s.exec(line);
  const missing = /^option '(?:-\w, )?(--[\w-]+) ([^']*)' argument missing$/.exec(line);
  if (option) line = badValue(option[1]!, option[2]!, option[3]!);
  else if (argument) line = badValue(`<${argument[2]}>`, argument[1]!, argument[3]!);
  else if (missing) line = `${missing[1]} needs a value: ${missing[1]} ${missing[2]}`;
  line = line.replace(/^(too many arguments.*)\. Expected /, '$1: expected ');
  // Commander puts "(Did you mean --base?)" on a line of its own.
  line = line.replace(/\s*\n\s*\(Did you mean/g, ' (did you mean').replace(/\s*\n\s*/g, ' ').replace(/\.$/, '');
  return `headswap: ${line}; see '${['headswap', command].filter(Boolean).join(' ')} --help'`;
}

/**
 * Commander shows a default only for a value it passes. Options whose default the library
 * decides (head settings that depend on the quality level, limits) carry the words alone
 * (`decidedDefault`), so the CLI passes nothing and the help still says what happens.
 */
const HELP: Partial<Help> = {
  optionDescription(this: Help, option: Option): string {
    if (option.defaultValue !== undefined || option.defaultValueDescription === undefined) return Help.prototype.optionDescription.call(this, option);
    const shown = Object.assign(Object.create(option) as Option, { defaultValue: option.defaultValueDescription });
    return Help.prototype.optionDescription.call(this, shown);
  },
};

/** An option the library gives a default when the CLI passes none; `words` say which in --help. */
export function decidedDefault(flags: string, description: string, words: string | number, parse?: (value: string) => unknown): Option {
  const o = new Option(flags, description).default(undefined, String(words));
  return parse ? o.argParser(parse) : o;
}

/** Every command's usage errors as one headswap line, and defaults the library decides shown in its help. */
export function configureCommands(program: Command): void {
  const visit = (cmd: Command, path: readonly string[]): void => {
    cmd
      .showHelpAfterError(false)
      .configureHelp(HELP)
      .configureOutput({ outputError: (message, write) => write(`${usageLine(message, path.join(' '))}\n`) });
    for (const sub of cmd.commands) visit(sub, [...path, sub.name()]);
  };
  visit(program, []);
}

/** `--cache-dir`, for every command that reads or writes the cache folder; `what` says what it holds for the command. */
export function cacheDirOption(what: string): Option {
  return decidedDefault('--cache-dir <dir>', what, '$HEADSWAP_CACHE, else the user cache folder');
}
