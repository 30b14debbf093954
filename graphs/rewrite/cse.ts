// Common-subexpression elimination as one rule: a node with the same op, inputs (in any order for
// commutative ops), attributes and type as a node met earlier in the sweep is replaced by that
// node. Inputs, params and state are never merged (each is its own value); random ops merge only
// when their seeds (attributes) are equal, i.e. when they draw the same numbers.

import { rule, type Rule } from './engine.js';
import { pat } from './pattern.js';

export const cseRules: readonly Rule[] = [
  rule('cse', pat.any(), (b, m, ctx) => b.tensor(ctx.canonical(m.root)), (m, ctx) => ctx.canonical(m.root) !== m.root.id),
];
