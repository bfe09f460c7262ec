"""verify: one check per claim of the paper; `python -m verify --list`."""
