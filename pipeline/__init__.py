"""The dataset build job: sources -> download/decode -> steps -> shards + ledger.

Importing the package sets the one offline-safe default every entry point needs
(build_dataset, the demo, the benchmarks, the Ray workers): img2dataset imports
albumentations, whose update check at import needs the network and stalls offline.
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
