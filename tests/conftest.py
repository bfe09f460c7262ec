import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

jax.config.update("jax_enable_x64", True)

# CI: derandomized, no deadline (the machine is shared and JIT compiles on first use).
settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, max_examples=25, print_blob=True)
# thorough: random, 2000 examples per property; `make test-thorough` passes --hypothesis-seed and prints it, and a
# failure prints its @reproduce_failure blob, so a failing run can be replayed exactly.
settings.register_profile(
    "thorough", deadline=None, max_examples=2000, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev")
settings.load_profile(PROFILE)


def pytest_report_header(config):
    seed = config.getoption("hypothesis_seed", default=None)
    return f"hypothesis profile {PROFILE!r}, seed {seed if seed is not None else 'random (pass --hypothesis-seed to fix it)'}"
