// A small transformer encoder for the rematerialization benchmark and tests: a chain of
// pre-layernorm blocks (multi-head self-attention with softmax over the keys, then a ReLU MLP,
// each added back to the residual stream) on inputs [batch, seq, dModel], mean-pooled over the
// sequence into class logits with softmax cross-entropy. Params are named blk<i>/<part>.
// No masking, no positional encoding: the inputs are taken to carry whatever position they need.

import { graph, dim, f32, type Builder, type Graph, type Tensor } from '../index.js';

export interface TransformerConfig {
  blocks: number;
  seq: number;
  dModel: number;
  heads: number;
  /** hidden width of each block's MLP (default 4 × dModel) */
  dFF?: number;
  classes: number;
  /**
   * Dropout rate after each attention and MLP output (default 0). Masks come from counter-based
   * random numbers with fixed seeds, so a recomputed mask equals the first one.
   */
  dropout?: number;
  /** base seed of the dropout masks (each one gets its own seed from it) */
  dropoutSeed?: number;
  /** a fixed batch size (default: the symbolic dim 'batch'); a pipeline cuts a graph built for one micro-batch */
  batch?: number;
}

/** Small defaults: a training step takes tens of milliseconds on the CPU at batch 8. */
export const smallTransformer: TransformerConfig = { blocks: 4, seq: 16, dModel: 32, heads: 4, classes: 10 };

/**
 * Inputs `x` [batch, seq, dModel] and one-hot `y` [batch, classes]; outputs `logits` and `loss`.
 *
 * @example
 *   const step = compile(grad(transformerGraph(smallTransformer), 'loss'), { optimizer: adam(1e-3) });
 *   step.runSync({ x, y }).loss;
 */
export function transformerGraph(cfg: TransformerConfig, name = 'transformer'): Graph {
  const { blocks, seq: S, dModel: D, heads: H, classes } = cfg;
  if (D % H !== 0) throw new RangeError(`transformerGraph: dModel ${D} is not a multiple of heads ${H}`);
  const B = cfg.batch ?? dim('batch');
  const rate = cfg.dropout ?? 0;
  let seed = cfg.dropoutSeed ?? 1;
  return graph(name, (g) => {
    const x = g.input('x', f32(B, S, D));
    const y = g.input('y', f32(B, classes));
    const drop = (t: Tensor) => (rate > 0 ? g.dropout(t, rate, seed++) : t);
    let h: Tensor = x;
    for (let i = 0; i < blocks; i++) {
      h = g.add(h, drop(attention(g, `blk${i}`, layerNorm(g, `blk${i}/ln1`, h, D), S, D, H)));
      h = g.add(h, drop(mlp(g, `blk${i}`, layerNorm(g, `blk${i}/ln2`, h, D), D, cfg.dFF ?? 4 * D)));
    }
    const pooled = g.mean(layerNorm(g, 'final/ln', h, D), 1); // [B, D]
    const logits = g.add(g.matmul(pooled, g.param('head/w', f32(D, classes), g.init.glorot())), g.param('head/b', f32(classes), g.init.zeros()));
    return { logits, loss: g.softmaxCrossEntropy(logits, y) };
  });
}

function layerNorm(g: Builder, name: string, x: Tensor, D: number): Tensor {
  return g.layerNorm(x, g.param(`${name}/gamma`, f32(D), g.init.ones()), g.param(`${name}/beta`, f32(D), g.init.zeros()));
}

/** Multi-head self-attention: heads split by reshape and transpose, scores by batched matmul. */
function attention(g: Builder, name: string, x: Tensor, S: number, D: number, H: number): Tensor {
  const Dh = D / H;
  const proj = (p: string) => g.matmul(x, g.param(`${name}/${p}`, f32(D, D), g.init.glorot()));
  // [B, S, D] -> [B, H, S, Dh]
  const split = (t: Tensor) => g.transpose(g.reshape(t, [-1, S, H, Dh]), [0, 2, 1, 3]);
  const q = split(proj('wq')), k = split(proj('wk')), v = split(proj('wv'));
  const scores = g.mul(g.matmul(q, g.transposeLast2(k)), 1 / Math.sqrt(Dh)); // [B, H, S, S]
  const ctx = g.matmul(g.softmax(scores, -1), v); // [B, H, S, Dh]
  const merged = g.reshape(g.transpose(ctx, [0, 2, 1, 3]), [-1, S, D]);
  return g.matmul(merged, g.param(`${name}/wo`, f32(D, D), g.init.glorot()));
}

function mlp(g: Builder, name: string, x: Tensor, D: number, F: number): Tensor {
  const hidden = g.relu(g.add(g.matmul(x, g.param(`${name}/w1`, f32(D, F), g.init.he())), g.param(`${name}/b1`, f32(F), g.init.zeros())));
  return g.add(g.matmul(hidden, g.param(`${name}/w2`, f32(F, D), g.init.glorot())), g.param(`${name}/b2`, f32(D), g.init.zeros()));
}
