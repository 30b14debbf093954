import { graph, f32, compile, reactive, tensor } from 'rheo';
import { BehaviorSubject, of } from 'rxjs';

const model = graph('scale', (g) => {
  const x = g.input('x', f32(3));
  const w = g.input('w', f32(3));
  return { y: g.add(g.mul(x, w), 1) };
});

const x$ = of(tensor([1, 2, 3], [3]));
const w$ = new BehaviorSubject(tensor([1, 1, 1], [3]));
const run = reactive(compile(model), { x: x$, w: w$ });
run.outputs.y.subscribe((y) => console.log(y.data));   // [2, 3, 4]
w$.next(tensor([2, 2, 2], [3]));                       // reruns what depends on w: [3, 5, 7]
