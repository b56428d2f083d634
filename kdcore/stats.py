"""kdcore.studies.stats under its former name, for code written against it."""

import sys

from kdcore.studies import stats

sys.modules[__name__] = stats
