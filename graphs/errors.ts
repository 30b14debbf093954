// Typed errors. Every error a user can cause names the op, the shapes involved and the user's
// call site, so a mistake deep in a model points back at the line that made it.
// Errors carry data fields as well as a message so tools can act on them.

export class RheoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Operand shapes are incompatible for an op. */
export class ShapeError extends RheoError {
  constructor(
    readonly op: string,
    readonly shapes: readonly (readonly (number | string)[])[],
    detail: string,
    readonly site?: string,
  ) {
    super(`${op}: ${detail}; shapes ${shapes.map((s) => `[${s.join(', ')}]`).join(', ')}${at(site)}`);
  }
}

/** Operand dtypes are not accepted by an op. */
export class DTypeError extends RheoError {
  constructor(
    readonly op: string,
    readonly dtypes: readonly string[],
    detail: string,
    readonly site?: string,
    readonly shapes: readonly (readonly (number | string)[])[] = [],
  ) {
    super(
      `${op}: ${detail}; dtypes ${dtypes.join(', ')}` +
        (shapes.length ? `; shapes ${shapes.map((s) => `[${s.join(', ')}]`).join(', ')}` : '') +
        at(site),
    );
  }
}

/** An op name that no definition in ops/ provides (e.g. from a hand-written or old JSON graph). */
export class UnknownOpError extends RheoError {
  constructor(
    readonly op: string,
    readonly shapes: readonly (readonly (number | string)[])[] = [],
    readonly site?: string,
  ) {
    super(
      `unknown op '${op}'` +
        (shapes.length ? ` with input shapes ${shapes.map((s) => `[${s.join(', ')}]`).join(', ')}` : '') +
        at(site),
    );
  }
}

/** A feed is missing, unexpected, or does not match its input's declared type. */
export class FeedError extends RheoError {
  constructor(
    readonly input: string,
    detail: string,
    readonly expected?: readonly (number | string)[],
    readonly got?: readonly number[],
  ) {
    super(
      `input '${input}': ${detail}` +
        (expected ? `; declared shape [${expected.join(', ')}]` : '') +
        (got ? `, fed shape [${got.join(', ')}]` : ''),
    );
  }
}

/**
 * A graph is malformed (dangling ids, cycles, bad outputs, a node whose declared type its op
 * does not give), e.g. after a bad deserialization. `node` is the id of the node at fault, if one is.
 */
export class GraphError extends RheoError {
  constructor(
    message: string,
    readonly node?: number,
  ) {
    super(message);
  }
}

function at(site?: string): string {
  return site ? ` (at ${site})` : '';
}

/** The working directory in Node; empty in browsers, where sites stay absolute URLs. */
function cwd(): string {
  const p = (globalThis as { process?: { cwd?: () => string } }).process;
  return p?.cwd?.() ?? '';
}

const INTERNAL = /[\\/](graphs|ops|scheduler|runtime)[\\/][^\\/]+\.[tj]s|node_modules|node:internal|<anonymous>/;

/**
 * The first stack frame outside rheo's own modules: the line of user code that built a node.
 * Cheap enough to call for every node of a graph under construction.
 */
export function callSite(): string | undefined {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 30;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  for (const line of stack.split('\n').slice(1)) {
    if (INTERNAL.test(line) || line.includes('index.ts')) continue;
    const m = /\(?((?:file:\/\/)?[^\s()]+:\d+:\d+)\)?\s*$/.exec(line.trim());
    if (m) return m[1]!.replace(/^file:\/\//, '').replace(`${cwd()}/`, '');
  }
  return undefined;
}
