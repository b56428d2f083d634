"""``python -m kdcore.architectures CLASSES``: print the architecture catalog as JSON (see catalog())."""

import json
import sys

from kdcore.architectures import describe_all

print(json.dumps(describe_all(int(sys.argv[1]))))
