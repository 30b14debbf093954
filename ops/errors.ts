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

/**
 * rheo's own folder, as a path with forward slashes ending in '/' ('' where modules are not
 * files, e.g. bundled for a browser). Frames in its modules are never the user's call site.
 */
const ROOT = ((): string => {
  try {
    const url = new URL('..', import.meta.url);
    return url.protocol === 'file:' ? normalizePath(decodeURIComponent(url.pathname)) : '';
  } catch {
    return '';
  }
})();

function normalizePath(p: string): string {
  return p.replace(/^file:\/\//, '').replace(/\\/g, '/').replace(/^\/([A-Za-z]:\/)/, '$1');
}

/** rheo's modules that build graphs (its entry points only re-export, so they are never frames). */
const OWN = /^(?:graphs|ops|scheduler|runtime|tools)\/.+\.[cm]?[tj]s$/;
/** Frames that are nobody's source line, and (where rheo is not a file tree) rheo's folders. */
const FOREIGN = /node_modules|^node:|^internal\/|^native$/;
const OWN_ANYWHERE = /[\\/](graphs|ops|scheduler|runtime)[\\/][^\\/]+\.[cm]?[tj]s$/;

/** The source location a stack line names ('path:line:col'), without the function name. */
function frameLocation(line: string): string | undefined {
  const t = line.trim();
  const m = /\(([^()]+:\d+:\d+)\)$/.exec(t) ?? /^at (?:async )?([^\s()]+:\d+:\d+)$/.exec(t) ?? /@(\S+:\d+:\d+)$/.exec(t);
  return m?.[1];
}

function isOwnFrame(location: string): boolean {
  const file = normalizePath(location.replace(/:\d+:\d+$/, ''));
  if (FOREIGN.test(file)) return true;
  if (ROOT) return file.startsWith(ROOT) && OWN.test(file.slice(ROOT.length));
  return OWN_ANYWHERE.test(file);
}

/**
 * The first stack frame outside rheo's own modules: the line of user code that built a node,
 * also when that code is a callback rheo calls (`graph(name, (g) => ...)`).
 * Cheap enough to call for every node of a graph under construction.
 */
export function callSite(): string | undefined {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 30;
  const stack = new Error().stack ?? '';
  Error.stackTraceLimit = limit;
  for (const line of stack.split('\n').slice(1)) {
    const loc = frameLocation(line);
    if (!loc || isOwnFrame(loc)) continue;
    const path = loc.startsWith('file://') ? decodeURIComponent(loc.slice(7)) : loc;
    const dir = cwd();
    return dir && path.startsWith(`${dir}/`) ? path.slice(dir.length + 1) : path;
  }
  return undefined;
}
