"""The Filter interface every filter implements (see DESIGN.md, "Stage interfaces").

A filter scores a batch of decoded RGB images (uint8 HxWx3 numpy arrays) plus one
metadata dict per image, and decides keep/reject from its thresholds. Filters are
plain Python objects: no Ray here, so each can be tested alone.
"""

from __future__ import annotations

import numpy as np


class Filter:
    name: str = "filter"
    # False for filters that decide from metadata alone (e.g. the original size):
    # the pipeline runs those before decoding any pixels.
    needs_pixels: bool = True
    # Names of the arrays `score` returns; the ledger gets one column per name,
    # written as f"{filter.name}_{score_name}".
    score_names: tuple[str, ...] = ()

    def score(self, images: list[np.ndarray], meta: list[dict]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def keep(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        """Boolean array, True where the sample passes this filter."""
        raise NotImplementedError

    def details(self, scores: dict[str, np.ndarray], keep: np.ndarray) -> list[str]:
        """Why each rejected sample was rejected, for the ledger's `detail` column.

        Default: the filter's name. Filters with several criteria say which one failed.
        """
        return ["" if k else self.name for k in keep]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
