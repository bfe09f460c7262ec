"""ntkprefix: the mathematics of "Towards Infinite-Long Prefix in Transformer" (arXiv 2406.14036), in JAX.

Pure functions only: no printing, plotting or file I/O. Verification float64 needs
``jax.config.update("jax_enable_x64", True)``, which the command lines and the tests set; the library follows
the dtype of its inputs.
"""

from ntkprefix import bounds, kernels, model, training
from ntkprefix.attention import (
    PrefixAttentionState,
    Projected,
    absorb_prefix,
    empty_prefix_state,
    finish_prefix_attention,
    max_abs_score,
    ntk_attention,
    prefix_attention,
    prefix_attention_stream,
    project,
)
from ntkprefix.features import (
    FeatureMap,
    as23_degree,
    elu_feature_map,
    parameter_counts,
    taylor_degree,
    taylor_feature_dimension,
    taylor_feature_map,
)
from ntkprefix.reduction import (
    PrefixSums,
    accumulate_prefix,
    empty_prefix_sums,
    reduce_prefix,
    reduce_prefix_stream,
)

__version__ = "0.1.0"

__all__ = [
    "bounds",
    "kernels",
    "model",
    "training",
    "Projected",
    "project",
    "prefix_attention",
    "PrefixAttentionState",
    "empty_prefix_state",
    "absorb_prefix",
    "finish_prefix_attention",
    "prefix_attention_stream",
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
