"""figures: regenerate the paper's figures (python -m figures --list)."""
