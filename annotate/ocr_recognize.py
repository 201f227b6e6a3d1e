"""EasyOCR recognition that reads the same on every device.

`Reader.recognize` has two branches: on "cpu" it reads each box alone (its crop padded
to its own width), on any other device it pads every crop of the image to the widest
one, reads them in one batch and re-sorts the lines by their top edge. The padding
changes what the recogniser sees (other text and confidences) and the sort changes the
order, so the fused caption changed with the device ("FRESH BAKERY AND COFFEE OPEN" on
CPU, "BAKERY AND COFFEE OPEN FRESH" on GPU).

`read_lines` keeps the CPU branch's semantics on every device and still batches: crops
are grouped by the width the CPU branch pads each one to, so batching never adds
padding, and the lines come back in the CPU branch's order (the horizontal boxes in
the order given, then the free ones).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

# Reader.recognize's defaults, which the annotator always used
_DECODER, _BEAM_WIDTH, _CONTRAST_THS, _ADJUST_CONTRAST, _FILTER_THS = "greedy", 5, 0.1, 0.5, 0.003


def read_lines(reader, grey: np.ndarray, horizontal: list, free: list, batch_size: int) -> list[tuple[list, str, float]]:
    """(box, text, confidence) per readable box, as `reader.recognize(grey, horizontal, free,
    detail=1, reformat=False)` returns them on CPU, at most `batch_size` crops per model call."""
    from easyocr import easyocr as core
    from easyocr.recognition import get_text
    from easyocr.utils import get_image_list

    height = core.imgH  # the recogniser's input height (a module global in easyocr)
    crops: list[tuple[int, tuple]] = []  # (padded width, (box, crop)), in the CPU branch's order
    for h_list, f_list in [([b], []) for b in horizontal] + [([], [b]) for b in free]:
        items, width = get_image_list(h_list, f_list, grey, model_height=height)
        crops.extend((int(width), item) for item in items)  # none for a box too thin to read
    by_width: dict[int, list[int]] = defaultdict(list)
    for i, (width, _) in enumerate(crops):
        by_width[width].append(i)
    ignore_char = "".join(sorted(set(reader.character) - set(reader.lang_char)))
    found: list = [None] * len(crops)
    for width, idx in sorted(by_width.items()):
        res = get_text(reader.character, height, width, reader.recognizer, reader.converter, [crops[i][1] for i in idx],
                       ignore_char, _DECODER, _BEAM_WIDTH, batch_size, _CONTRAST_THS, _ADJUST_CONTRAST, _FILTER_THS,
                       0, reader.device)
        for i, r in zip(idx, res):
            found[i] = r
    return found
