"""kdcore.studies.study under its former name, for code written against it."""

import sys

from kdcore.studies import study

sys.modules[__name__] = study
