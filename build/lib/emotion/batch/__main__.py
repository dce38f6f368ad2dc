"""``python -m emotion.batch --input SRC --output DST [options] [Beam pipeline options]``."""

import sys

from emotion.batch.pipeline import main

sys.exit(main())
