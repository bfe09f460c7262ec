"""verify: one check per claim of the paper; ``python -m verify --list``.

From Python (a notebook, say)::

    import verify
    result = verify.run("thm4_1", quick=True, d=8)      # settings overrides as keywords
    result.paper_line, result.readings_line, result.predictions

``run`` enables float64 (``jax_enable_x64``), as the command line does, and returns the
:class:`verify.result.Result` without writing files or printing.
"""

from __future__ import annotations

__all__ = ["run"]


def run(claim_id: str, *, quick: bool = False, seed: int = 0, control: str | None = None, **overrides):
    """Run one claim's check (or one of its controls) and return its Result.

    Args:
      claim_id: a registered claim (``python -m verify --list``); KeyError otherwise.
      quick: the quick mode's settings.
      seed: the PRNG seed; the same seed gives the same numbers.
      control: a negative control's name, or None for the claim itself.
      **overrides: settings fields to replace, typed and validated like ``--set`` (SettingsError otherwise).
    """
    from verify import jax_setup, registry

    jax_setup.configure()  # float64, and the PRNG bit stream the recorded seeds draw from

    return registry.get(claim_id).run(
        registry.RunOptions(quick=quick, seed=seed, control=control, overrides=tuple(overrides.items()))
    )
