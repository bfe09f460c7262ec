"""ntkprefix: the mathematics of "Towards Infinite-Long Prefix in Transformer" (arXiv 2406.14036), in JAX.

Pure functions only: no printing, plotting or file I/O. Verification float64 needs
``jax.config.update("jax_enable_x64", True)``, which the command lines and the tests set; the library follows
the dtype of its inputs.
"""

import os as _os

# neural-tangents imports TensorFlow unconditionally; keep its C++ start-up logging out of the user's terminal.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from ntkprefix import bounds  # noqa: E402
from ntkprefix.attention import Projected, max_abs_score, ntk_attention, prefix_attention, project  # noqa: E402
from ntkprefix.features import (  # noqa: E402
    FeatureMap,
    as23_degree,
    elu_feature_map,
    parameter_counts,
    taylor_degree,
    taylor_feature_dimension,
    taylor_feature_map,
)
from ntkprefix.reduction import (  # noqa: E402
    PrefixSums,
    accumulate_prefix,
    empty_prefix_sums,
    reduce_prefix,
    reduce_prefix_stream,
)

__version__ = "0.1.0"

__all__ = [
    "bounds",
    "Projected",
    "project",
    "prefix_attention",
    "ntk_attention",
    "max_abs_score",
    "FeatureMap",
    "taylor_feature_map",
    "elu_feature_map",
    "taylor_feature_dimension",
    "taylor_degree",
    "as23_degree",
    "parameter_counts",
    "PrefixSums",
    "empty_prefix_sums",
    "accumulate_prefix",
    "reduce_prefix",
    "reduce_prefix_stream",
]
