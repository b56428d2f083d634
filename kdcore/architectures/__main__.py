"""``python -m kdcore.architectures CLASSES``: print the architecture catalog as JSON (see catalog())."""

import json
import os
import sys

# A description is background work for the server that asked for it: its requests come first for the CPU.
if hasattr(os, "nice"):  # POSIX
    os.nice(10)

from kdcore.architectures import describe_all  # noqa: E402

print(json.dumps(describe_all(int(sys.argv[1]))))
