/**
 * Reverse-mode autograd over a tape of op nodes.
 *
 * Each op that has a differentiable input records a Node: its inputs, the tensors it
 * saved for the backward, and a function from the output gradient to input gradients.
 * `backward(loss)` sorts the graph topologically once, so a shared subgraph (a residual
 * stream read by many blocks) is walked exactly once, with its incoming gradients
 * summed before it propagates further.
 */

import { type Tensor, tidy, trackNode } from "./tensor.ts";
import * as ops from "./ops/mod.ts";

/** One recorded op in the autograd graph: how to turn its output gradient into input gradients. */
export class Node {
  /** True once `free()` has released the saved tensors. */
  freed = false;
  /** `name` labels the op in errors; `inputs` are null where no gradient is needed. */
  constructor(
    readonly name: string,
    readonly inputs: (Tensor | null)[],
    /** Output gradient to one gradient per input (null where not needed). */
    readonly backwardFn: (grad: Tensor) => (Tensor | null)[],
    /** Tensors kept alive for the backward; released by free(). */
    readonly saved: Tensor[] = [],
  ) {}

  /** Release the saved tensors; the node cannot run its backward afterwards. Idempotent. */
  free(): void {
    if (this.freed) return;
    this.freed = true;
    for (const t of this.saved) t.dispose();
    this.saved.length = 0;
  }
}

let gradDisabled = 0;

/** False inside `noGrad`/`noGradAsync`, where ops record no graph. */
export function isGradEnabled(): boolean {
  return gradDisabled === 0;
}

/** Run without recording a graph (inference, optimiser updates). */
export function noGrad<T>(fn: () => T): T {
  gradDisabled++;
  try {
    return fn();
  } finally {
    gradDisabled--;
  }
}

/** Async variant of `noGrad`; grad recording stays off until the promise settles. */
export async function noGradAsync<T>(fn: () => Promise<T>): Promise<T> {
  gradDisabled++;
  try {
    return await fn();
  } finally {
    gradDisabled--;
  }
}

/**
 * Attach a node to `out` when any input needs a gradient. `save` lists tensors the
 * backward reads; they are aliased so that disposing the originals is harmless.
 */
export function record(
  name: string,
  out: Tensor,
  inputs: (Tensor | null)[],
  backwardFn: (grad: Tensor, saved: Tensor[]) => (Tensor | null)[],
  save: Tensor[] = [],
): Tensor {
  if (gradDisabled > 0 || !inputs.some((t) => t?.requiresGrad)) return out;
  const saved = save.map((t) => {
    const a = t.alias();
    a.keep();
    return a;
  });
  const node = new Node(name, inputs, (g) => backwardFn(g, saved), saved);
  out.node = node;
  out.requiresGrad = true;
  trackNode(node);
  return out;
}

/** Nodes reachable from `root`, ordered so that every node comes after its consumers. */
function reverseTopological(root: Node): Node[] {
  const order: Node[] = [];
  const visited = new Set<Node>();
  // Iterative post-order DFS: deep transformer graphs overflow a recursive walk.
  const stack: [Node, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [node, i] = top;
    if (i < node.inputs.length) {
      top[1]++;
      const child = node.inputs[i]?.node;
      if (child && node.inputs[i]!.requiresGrad && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      order.push(node);
      stack.pop();
    }
  }
  return order.reverse();
}

/**
 * Accumulate d(loss)/d(leaf) into every leaf's `.grad`. The loss must be a scalar
 * unless `grad` is given. The graph is freed afterwards unless `retainGraph`.
 */
export function backward(loss: Tensor, grad?: Tensor, retainGraph = false): void {
  if (!loss.requiresGrad) {
    throw new Error("backward: the tensor does not require grad (no parameter took part)");
  }
  if (!grad && loss.size !== 1) {
    throw new Error(
      `backward: loss must be a scalar, got shape [${
        loss.shape.join(", ")
      }]; pass an output gradient`,
    );
  }
  const root = loss.node;
  tidy(() => {
    noGrad(() => {
      const seed = grad ? grad.alias() : ops.fill(loss.shape, 1, loss.backend);
      if (!root) {
        accumulateLeaf(loss, seed);
        return;
      }
      if (root.freed) {
        throw new Error(
          "backward: the graph was already freed (call backward once, or pass retainGraph)",
        );
      }
      const grads = new Map<Node, Tensor>([[root, seed]]);
      for (const node of reverseTopological(root)) {
        const g = grads.get(node);
        grads.delete(node);
        if (!g) continue;
        if (node.freed) {
          throw new Error(`backward: graph node '${node.name}' was freed before backward`);
        }
        const inGrads = node.backwardFn(g);
        g.dispose();
        node.inputs.forEach((input, i) => {
          const ig = inGrads[i];
          if (!input || !ig || !input.requiresGrad) {
            ig?.dispose();
            return;
          }
          if (!sameShape(ig.shape, input.shape)) {
            throw new Error(
              `backward: '${node.name}' gave a gradient of shape [${ig.shape}] for input [${input.shape}]`,
            );
          }
          if (input.node) {
            const prev = grads.get(input.node);
            grads.set(input.node, prev ? addInto(prev, ig) : ig);
          } else {
            accumulateLeaf(input, ig);
          }
        });
        if (!retainGraph) node.free();
      }
    });
  });
}

function addInto(a: Tensor, b: Tensor): Tensor {
  const s = ops.add(a, b);
  a.dispose();
  b.dispose();
  return s;
}

function accumulateLeaf(leaf: Tensor, g: Tensor): void {
  const c = g.isContiguous() && g.offset === 0 ? g : ops.contiguous(g);
  if (c !== g) g.dispose();
  if (leaf.grad) {
    const s = ops.add(leaf.grad, c);
    leaf.grad.dispose();
    c.dispose();
    leaf.grad = s.keep();
  } else {
    leaf.grad = c.keep();
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
