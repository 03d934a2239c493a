"""Data that ships inside the package, so an installed wheel needs no source tree.

``customer_service/``: the bundled bilingual customer-service dialogues (``train.csv``,
``test.csv``) and the generator that wrote them (``python -m
scratchgpt.datasets.customer_service.generate``). See ``README.md`` here for what each preset
of ``scratchgpt data prepare`` builds from it.

Not to be confused with ``scratchgpt.data``, the code that loads, cleans and splits data.
"""
from __future__ import annotations

from pathlib import Path

DATASETS_DIR = Path(__file__).resolve().parent
CUSTOMER_SERVICE_DIR = DATASETS_DIR / "customer_service"


def customer_service_file(split: str) -> Path:
    """Path of the bundled ``train.csv`` / ``test.csv``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return CUSTOMER_SERVICE_DIR / f"{split}.csv"
