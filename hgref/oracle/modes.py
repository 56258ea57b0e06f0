"""The three ways of computing ∇f_T(η): forward tangent, reverse adjoint, finite differences.

* :func:`forward` — the tangent system of MARTHE Eq. 3 over the whole packed state
  x = (w, buffers) (not only w): Ẋ_0 = 0, Ẋ_{t+1} = A_t Ẋ_t + B_t e_tᵀ, then Eq. 2/4:
  ∇f_T = Ẋ_T[:d]ᵀ ∇E(w_T). Column j of Ẋ_t is zero for j ≥ t (η_j acts after step j),
  so step t updates only the t active columns.
* :func:`reverse` — the adjoint recursion λ_T = (∇E(w_T), 0), λ_t = A_tᵀ λ_{t+1},
  [∇f_T]_t = λ_{t+1}ᵀ B_t (Eq. 4 read right to left), with stored or checkpointed states.
* :func:`finite_differences` — central differences, for tests.
"""
from __future__ import annotations

import numpy as np

from .._checks import DivergenceError
from ..dynamics import pack
from ..linearize import adjoint, advance, evaluate, linearize, tangent_update
from .unroll import _where, final_objective, sweep

__all__ = ["forward", "reverse", "finite_differences", "DENSE_MAX_STATE"]

#: Forward mode forms A_t densely (n tangent products, then one matrix product) when the
#: packed state has n ≤ DENSE_MAX_STATE entries and step t has more than n active
#: columns: the cost per step is then min(n, t) tangent products instead of t. On the toy
#: problems (n ≤ 6) this makes forward mode O(T) instead of O(T²) products; the n × n
#: matrix is negligible memory below this size.
DENSE_MAX_STATE = 32


def _jacobian(problem, dynamics, state, batch, eta, n):
    """A_t as a dense (n, n) matrix from n tangent products (columns A_t e_j)."""
    A = np.empty((n, n))
    e = np.zeros(n)
    for j in range(n):
        e[j] = 1.0
        step, tan = linearize(problem, dynamics, state, batch, e)
        A[:, j] = tangent_update(e, step, tan, eta, with_b=False)
        e[j] = 0.0
    return A


def _apply_a(problem, dynamics, state, batch, eta, rows):
    """Rows z_j ↦ A_t z_j for a (k, n) block of tangents (columns of Ẋ_t stored as rows)."""
    k, n = rows.shape
    if n <= DENSE_MAX_STATE and k > n:
        return rows @ _jacobian(problem, dynamics, state, batch, eta, n).T
    out = np.empty_like(rows)
    for j in range(k):
        step, tan = linearize(problem, dynamics, state, batch, rows[j])
        out[j] = tangent_update(rows[j], step, tan, eta, with_b=False)
    return out


def forward(problem, dynamics, schedule, seed, *, prefix=False, objective_grad=None):
    """Forward mode (MARTHE Eq. 3–4): returns ``(f_T, ∇f_T)`` or, with ``prefix``,
    ``(f_T, J)`` with J[t, i] = ∂E(w_t)/∂η_i, shape (T+1, T) — or ∂Obj_t(w_t)/∂η_i with
    ``objective_grad(t, w) = ∇Obj_t(w)`` (prefix only; f_T stays E(w_T)).

    Cost: Σ_t min(t, n) tangent products (n ≤ DENSE_MAX_STATE) or T(T−1)/2 (larger n);
    memory: the (T, n) tangent Ẋ.
    """
    T = len(schedule)
    state = dynamics.init(problem.w0)
    d, n = problem.dim, pack(state).shape[0]
    Z = np.zeros((T, n))                      # row j: column j of Ẋ_t (∂x_t/∂η_j)
    J = np.zeros((T + 1, T)) if prefix else None
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(T):
            eta = float(schedule[t])
            batch = problem.batch(t, seed)
            step = evaluate(problem, dynamics, state, batch)
            if not np.isfinite(step.loss):
                raise DivergenceError(t, "loss", _where(problem, dynamics, eta))
            if t:
                Z[:t] = _apply_a(problem, dynamics, state, batch, eta, Z[:t])
                if not np.all(np.isfinite(Z[:t])):
                    raise DivergenceError(t, "tangent", _where(problem, dynamics, eta))
            Z[t, :d] = -step.direction            # B_t = (−d_t, 0) in column t
            state = advance(state, step, eta)
            if not np.all(np.isfinite(state.w)):
                raise DivergenceError(t, "weights", _where(problem, dynamics, eta))
            if prefix and t + 1 < T:
                gobj = (problem.objective_grad(state.w) if objective_grad is None
                        else objective_grad(t + 1, state.w))
                J[t + 1, :t + 1] = Z[:t + 1, :d] @ gobj
    value = final_objective(problem, state, T)
    with np.errstate(over="ignore", invalid="ignore"):
        grad = Z[:, :d] @ problem.objective_grad(state.w)
    if not np.all(np.isfinite(grad)):
        raise DivergenceError(T, "hypergradient", _where(problem, dynamics, float(schedule[-1])))
    if prefix:
        J[T] = grad if objective_grad is None else Z[:, :d] @ objective_grad(T, state.w)
        return value, J
    return value, grad


class _Store:
    """Kept (x_t, ∇L_t(w_t)) of up to ``rows`` steps, copied into one preallocated block.

    A dict of the sweep's own arrays faults in 2 fresh arrays per step (MNIST 784-32-10,
    T = 512: 50 700 minor page faults, ≈ 25 % of the reverse sweep); one block of
    rows × (n + d) float64 is faulted in by huge pages (NumPy asks for them on large
    arrays; ≈ 310 faults) and the sweep's arrays are reused. Measured 6 calls in a row on
    the shared machine: kernel time 0.003–0.03 s per call, 0.3–0.4 s when the kernel had
    to compact memory for the huge pages; 4 KiB pages (``MADV_NOHUGEPAGE``) cost 0.15–0.2 s
    every call. ``pop(t)`` returns views (state of the dynamics' type, gradient).
    """

    def __init__(self, rows, n, d):
        self.block, self.d, self.start, self.meta = np.empty((rows, n + d)), d, 0, {}

    def __setitem__(self, t, item):
        state, grad = item
        row, o = self.block[t - self.start], 0
        for part in state[:-1]:
            row[o:o + part.shape[0]] = part
            o += part.shape[0]
        row[o:] = grad
        self.meta[t] = (type(state), len(state) - 1, state.count)

    def pop(self, t):
        kind, parts, count = self.meta.pop(t)
        row, d = self.block[t - self.start], self.d
        return kind(*(row[i * d:(i + 1) * d] for i in range(parts)), count), row[parts * d:]


def reverse(problem, dynamics, schedule, seed, *, checkpoint_every=None):
    """Reverse mode: adjoint sweep λ_t = A_tᵀ λ_{t+1}, [∇f_T]_t = λ_{t+1}ᵀ B_t.

    Without checkpointing the forward sweep stores every state x_t and gradient ∇L_t(w_t)
    (passed to :func:`hgref.linearize.adjoint`, saving a gradient per step, whose
    Hessian-vector product is then an HVP-only pass): memory T states and gradients, in one
    preallocated block (:class:`_Store`). With ``checkpoint_every=k`` it stores x_0, x_k,
    x_2k, … and recomputes each segment before its adjoint sweep: memory O(T/k + k) states,
    one extra forward sweep. Recomputation is deterministic, so both give bitwise the same
    result.
    """
    T = len(schedule)
    k = T if checkpoint_every is None else checkpoint_every
    x0 = dynamics.init(problem.w0)
    d, n = problem.dim, pack(x0).shape[0]
    store = _Store(min(k, T), n, d)
    if checkpoint_every is None:
        final, kept = sweep(problem, dynamics, schedule, seed, x0, keep_every=1, keep_grads=True,
                            kept=store)
    else:
        final, kept = sweep(problem, dynamics, schedule, seed, x0, keep_every=k)
    value = final_objective(problem, final, T)
    lam = np.zeros(n)
    grad = np.empty(T)
    with np.errstate(over="ignore", invalid="ignore"):
        lam[:d] = problem.objective_grad(final.w)
        for start in reversed(range(0, T, k)):
            stop = min(start + k, T)
            if checkpoint_every is None:
                segment = kept
            else:
                store.start = start
                _, segment = sweep(problem, dynamics, schedule, seed, kept[start][0], start, stop,
                                   keep_every=1, keep_grads=True, kept=store)
            for t in reversed(range(start, stop)):
                state, g = segment.pop(t)
                lam, grad[t] = adjoint(problem, dynamics, state, problem.batch(t, seed),
                                       float(schedule[t]), lam, grad=g)
                if not (np.all(np.isfinite(lam)) and np.isfinite(grad[t])):
                    raise DivergenceError(t, "adjoint", _where(problem, dynamics, float(schedule[t])))
    return value, grad


def finite_differences(problem, dynamics, schedule, seed, *, fd_step=1e-6):
    """Central differences [f_T(η + h_i e_i) − f_T(η − h_i e_i)] / 2h_i, h_i = fd_step·max(1, η_i).

    η_i − h_i may be slightly negative: f_T is smooth there (Φ_t is affine in η_t).
    Cost: 2T + 1 inner runs; accuracy ≈ h² f''' + ε f / h (about 1e-6 relative at h = 1e-6).
    """
    T = len(schedule)
    x0 = dynamics.init(problem.w0)

    def f(eta):
        return final_objective(problem, sweep(problem, dynamics, eta, seed, x0)[0], T)

    value = f(schedule)
    grad = np.empty(T)
    eta = np.array(schedule, dtype=float)
    for i in range(T):      # every f() is finite (sweep and final_objective raise otherwise)
        h = fd_step * max(1.0, eta[i])
        up, down = eta[i] + h, eta[i] - h
        eta[i] = up
        f_up = f(eta)
        eta[i] = down
        f_down = f(eta)
        eta[i] = schedule[i]
        grad[i] = (f_up - f_down) / (up - down)
    return value, grad
