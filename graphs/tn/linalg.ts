// Small dense linear algebra on the host, in double precision: the least-squares solves of ALS
// (a Cholesky factorization of a Gram matrix of at most a few hundred rows) and the spectra of
// small Gram matrices (cyclic Jacobi). Contractions of tensors are not done here: they are
// rheo graphs. Matrices are row-major Float64Arrays.

/** Solve X·A = B for X (A symmetric positive semi-definite n×n, B m×n), with a small ridge. */
export function solveSpd(A: Float64Array, B: Float64Array, n: number, ridge = 1e-12): Float64Array {
  const L = new Float64Array(n * n);
  let tr = 0;
  for (let i = 0; i < n; i++) tr += A[i * n + i]!;
  const lam = Math.max(ridge * (tr / Math.max(n, 1)), 1e-300);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * n + j]! + (i === j ? lam : 0);
      for (let k = 0; k < j; k++) s -= L[i * n + k]! * L[j * n + k]!;
      if (i === j) L[i * n + i] = Math.sqrt(Math.max(s, lam));
      else L[i * n + j] = s / L[j * n + j]!;
    }
  }
  const m = B.length / n;
  const X = new Float64Array(m * n);
  const y = new Float64Array(n);
  for (let r = 0; r < m; r++) {
    // A is symmetric, so X·A = B row by row is A·xᵀ = bᵀ: L·Lᵀ·xᵀ = bᵀ.
    for (let i = 0; i < n; i++) {
      let s = B[r * n + i]!;
      for (let k = 0; k < i; k++) s -= L[i * n + k]! * y[k]!;
      y[i] = s / L[i * n + i]!;
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = y[i]!;
      for (let k = i + 1; k < n; k++) s -= L[k * n + i]! * X[r * n + k]!;
      X[r * n + i] = s / L[i * n + i]!;
    }
  }
  return X;
}

/** Eigenvalues (largest first) and eigenvectors (column j of the row-major `vectors`) of a symmetric n×n matrix, by cyclic Jacobi. */
export function symmetricEigen(S: ArrayLike<number>, n: number): { values: number[]; vectors: Float64Array } {
  const A = Float64Array.from(S);
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    let diag = 0;
    for (let i = 0; i < n; i++) {
      diag += A[i * n + i]! ** 2;
      for (let j = i + 1; j < n; j++) off += A[i * n + j]! ** 2;
    }
    if (off <= 1e-30 * diag || off === 0) break;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) {
      const apq = A[p * n + q]!;
      if (Math.abs(apq) < 1e-300) continue;
      const theta = (A[q * n + q]! - A[p * n + p]!) / (2 * apq);
      const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const c = 1 / Math.sqrt(t * t + 1);
      const s = t * c;
      for (let k = 0; k < n; k++) {
        const akp = A[k * n + p]!;
        const akq = A[k * n + q]!;
        A[k * n + p] = c * akp - s * akq;
        A[k * n + q] = s * akp + c * akq;
      }
      for (let k = 0; k < n; k++) {
        const apk = A[p * n + k]!;
        const aqk = A[q * n + k]!;
        A[p * n + k] = c * apk - s * aqk;
        A[q * n + k] = s * apk + c * aqk;
        const vkp = V[k * n + p]!;
        const vkq = V[k * n + q]!;
        V[k * n + p] = c * vkp - s * vkq;
        V[k * n + q] = s * vkp + c * vkq;
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => A[b * n + b]! - A[a * n + a]!);
  const vectors = new Float64Array(n * n);
  order.forEach((src, j) => { for (let i = 0; i < n; i++) vectors[i * n + j] = V[i * n + src]!; });
  return { values: order.map((i) => A[i * n + i]!), vectors };
}

/** Eigenvalues of a symmetric n×n matrix, largest first. */
export function symmetricEigenvalues(S: ArrayLike<number>, n: number): number[] {
  return symmetricEigen(S, n).values;
}

/**
 * The best rank-r factorization M ≈ A·B of an m×n matrix (A m×r, B r×n), from the eigenvectors
 * of the smaller Gram matrix. Ranks beyond the matrix's size get zero columns and rows.
 */
export function lowRankSplit(M: Float64Array, m: number, n: number, r: number): { A: Float64Array; B: Float64Array } {
  const A = new Float64Array(m * r);
  const B = new Float64Array(r * n);
  const q = Math.min(r, m, n);
  if (m <= n) {
    const W = new Float64Array(m * m);
    for (let i = 0; i < m; i++) for (let j = i; j < m; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += M[i * n + k]! * M[j * n + k]!;
      W[i * m + j] = s;
      W[j * m + i] = s;
    }
    const { vectors: U } = symmetricEigen(W, m);
    for (let i = 0; i < m; i++) for (let c = 0; c < q; c++) A[i * r + c] = U[i * m + c]!;
    for (let c = 0; c < q; c++) for (let k = 0; k < n; k++) {
      let s = 0;
      for (let i = 0; i < m; i++) s += U[i * m + c]! * M[i * n + k]!;
      B[c * n + k] = s;
    }
  } else {
    const W = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) {
      let s = 0;
      for (let k = 0; k < m; k++) s += M[k * n + i]! * M[k * n + j]!;
      W[i * n + j] = s;
      W[j * n + i] = s;
    }
    const { vectors: V } = symmetricEigen(W, n);
    for (let c = 0; c < q; c++) for (let k = 0; k < n; k++) B[c * n + k] = V[k * n + c]!;
    for (let i = 0; i < m; i++) for (let c = 0; c < q; c++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += M[i * n + k]! * V[k * n + c]!;
      A[i * r + c] = s;
    }
  }
  return { A, B };
}

/** Transpose a row-major tensor: output axis i is input axis perm[i]. */
export function permuteAxes(x: ArrayLike<number>, shape: readonly number[], perm: readonly number[]): Float64Array {
  const d = shape.length;
  const out = new Float64Array(x.length);
  const strides = new Array<number>(d);
  for (let i = d - 1, s = 1; i >= 0; i--) { strides[i] = s; s *= shape[i]!; }
  const oshape = perm.map((p) => shape[p]!);
  const ostr = perm.map((p) => strides[p]!);
  const idx = new Array<number>(d).fill(0);
  let src = 0;
  for (let o = 0; o < out.length; o++) {
    out[o] = x[src]!;
    for (let i = d - 1; i >= 0; i--) {
      idx[i]!++;
      src += ostr[i]!;
      if (idx[i]! < oshape[i]!) break;
      src -= ostr[i]! * oshape[i]!;
      idx[i] = 0;
    }
  }
  return out;
}

/**
 * The smallest rank whose truncation leaves a relative error of at most `tol`, from the
 * eigenvalues of a Gram matrix (squared singular values) and the squared norm of the tensor.
 */
export function numericalRank(eigs: readonly number[], normSq: number, tol: number): number {
  let tail = 0;
  const budget = tol * tol * normSq;
  for (let r = eigs.length; r > 0; r--) {
    tail += Math.max(eigs[r - 1]!, 0);
    if (tail > budget) return r;
  }
  return 1;
}
