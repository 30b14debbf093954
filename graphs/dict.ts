// Records keyed by names users choose (inputs, params, outputs, feeds, variables, tensors in a
// file). They have no prototype, so names such as '__proto__', 'constructor' or 'toString' are
// ordinary keys: assigning one sets an own property, and looking up an absent one finds nothing.

/** An empty record with no prototype, or one holding `entries` (later entries win). */
export function dict<T>(entries?: Iterable<readonly [string, T]>): Record<string, T> {
  const out = Object.create(null) as Record<string, T>;
  if (entries) for (const [k, v] of entries) out[k] = v;
  return out;
}

/** A prototype-free copy of a record's own enumerable entries. */
export function dictOf<T>(record: Readonly<Record<string, T>>): Record<string, T> {
  return dict(Object.entries(record));
}

/** Whether `record` has its own entry `name` (never one inherited from Object.prototype). */
export function hasName(record: object, name: string): boolean {
  return Object.prototype.hasOwnProperty.call(record, name);
}

/** `record[name]` when it is the record's own entry, else undefined. */
export function lookup<T>(record: Readonly<Record<string, T>>, name: string): T | undefined {
  return hasName(record, name) ? record[name] : undefined;
}
