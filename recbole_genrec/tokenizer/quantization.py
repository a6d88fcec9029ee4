"""What a residual quantizer hands on: the codes and what its last level saw.

``last_input`` and the last codebook let collision handling re-assign an item's
last-level code to the next-nearest free one; ``reconstruct(codes)`` rebuilds
embeddings from any code table of the same quantizer (for the reconstruction
error after such changes).
"""

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Quantization:
    codes: np.ndarray                                # [n_items, levels] int64
    codebooks: list                                  # per level [codebook_size, d]
    last_input: np.ndarray                           # [n_items, d] input of the last level
    reconstruct: Callable[[np.ndarray], np.ndarray]  # codes -> embeddings [n_items, dim]
    details: dict = field(default_factory=dict)      # method-specific facts for the report

    @property
    def last_codebook(self) -> np.ndarray:
        return self.codebooks[-1]
