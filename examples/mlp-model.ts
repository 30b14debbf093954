// The MLP used by the Fashion-MNIST example and the training-step benchmark: dense layers with
// ReLU between them and softmax cross-entropy on one-hot labels. Params are named w0, b0, w1, …

import { graph, dim, f32, type Graph, type Tensor } from '../index.js';

export function mlpGraph(sizes: readonly number[], name = 'mlp'): Graph {
  const B = dim('batch');
  return graph(name, (g) => {
    const x = g.input('x', f32(B, sizes[0]!));
    const y = g.input('y', f32(B, sizes[sizes.length - 1]!));
    let h: Tensor = x;
    for (let l = 0; l + 1 < sizes.length; l++) {
      const w = g.param(`w${l}`, f32(sizes[l]!, sizes[l + 1]!), g.init.he());
      const b = g.param(`b${l}`, f32(sizes[l + 1]!), g.init.zeros());
      h = g.add(g.matmul(h, w), b);
      if (l + 2 < sizes.length) h = g.relu(h);
    }
    return { logits: h, loss: g.softmaxCrossEntropy(h, y) };
  });
}
