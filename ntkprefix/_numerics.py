"""Matrix products at full precision, wherever a rounding bound of this project depends on them  [derived].

Every rounding bound of the toolkit (:func:`ntkprefix.bounds.rounding_allowance`, the calibrations of ``verify/``, the
tolerances of ``tests/tolerances.py``) models a float32 product as an IEEE float32 multiplication, u = 2^-24. On
NVIDIA GPUs from Ampere on, XLA computes float32 matrix products at the DEFAULT precision with TensorFloat-32 inputs
(10-bit mantissa, u = 2^-11), and TPUs with bfloat16 passes: every float32 bound would then be false by a factor of
about 8000. So every matrix product of the library asks for ``Precision.HIGHEST`` explicitly: full float32 on GPU
(TF32 off) and TPU (six bfloat16 passes), a no-op on CPU, where XLA and its oneDNN matmul compute float32 products in
float32 at every precision (tests/test_numerics.py checks the HLO of each jitted entry point: every dot carries
HIGHEST). float64 products are exact IEEE float64 everywhere.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["MATMUL_PRECISION", "matmul", "einsum"]

#: The precision of every matrix product of the library (see the module docstring).
MATMUL_PRECISION = jax.lax.Precision.HIGHEST


def matmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """a @ b at :data:`MATMUL_PRECISION`."""
    return jnp.matmul(a, b, precision=MATMUL_PRECISION)


def einsum(subscripts: str, *operands: jax.Array) -> jax.Array:
    """jnp.einsum at :data:`MATMUL_PRECISION`."""
    return jnp.einsum(subscripts, *operands, precision=MATMUL_PRECISION)
