"""Seed sweeps spread over devices (verify/sharding.py): one device runs them one after the other, several devices
side by side, with identical results; shown with two forced host devices in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from verify.sharding import SeedBatch, device_summary

ROOT = Path(__file__).resolve().parents[1]


def _square_and_total(x, offset):
    return x * x + offset, jnp.sum(x)


def test_one_device_batch_equals_each_run_alone():
    x = np.arange(12.0).reshape(3, 4)
    batch = SeedBatch(3)
    squares, totals = batch.get(batch.run(_square_and_total, (x,), (1.5,)))
    for i in range(3):
        np.testing.assert_array_equal(squares[i], x[i] * x[i] + 1.5)
        assert totals[i] == x[i].sum()
    # outputs stay laid out for the next call (a running state is never copied back to the host)
    again = batch.run(_square_and_total, (batch.run(_square_and_total, (x,), (0.0,))[0],), (0.0,))
    np.testing.assert_array_equal(batch.get(again)[0], (x * x) ** 2)
    assert batch.n_devices == 1 and batch.padded == 3 and device_summary().startswith("1 x cpu")


def test_a_batch_needs_a_run_and_the_right_leading_axis():
    with pytest.raises(ValueError, match="at least one run"):
        SeedBatch(0)
    with pytest.raises(ValueError, match="leading axis 3"):
        SeedBatch(3).put(np.zeros((2, 4)))


_SCRIPT = """
import json, sys
import jax
import verify
claim, overrides = sys.argv[1], json.loads(sys.argv[2])
result = verify.run(claim, quick=True, **overrides).to_dict()
print(json.dumps({"devices": len(jax.devices()), "verdict": [result["paper_verdict"], result["readings"]],
                  "measurements": result["measurements"],
                  "predictions": result["predictions"], "conditions": result["conditions"]}))
"""


def _run(claim: str, overrides: dict, devices: int) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, claim, json.dumps(overrides)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("claim,overrides", [
    ("thm4_1", {"max_log2_m": 8, "extreme_max_log2_m": 9, "d_log_m_max_log2_m": 6, "random_seeds": 2,
                "extreme_seeds": 2, "grid_degrees": (1, 3), "min_checked": 1, "stream_chunk_rows": 64}),
    ("prop3_3", {"min_log2_m": 6, "max_log2_m": 7, "n_seeds": 3}),
])
def test_two_devices_give_the_results_of_one(claim, overrides):
    one, two = _run(claim, overrides, 1), _run(claim, overrides, 2)
    assert one["devices"] == 1 and two["devices"] == 2
    assert one["measurements"] == two["measurements"]  # every measured number, bit for bit
    assert one["predictions"] == two["predictions"] and one["conditions"] == two["conditions"]
    assert one["verdict"] == two["verdict"]
