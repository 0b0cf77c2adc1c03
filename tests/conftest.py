"""Test settings shared by every test module."""

import os

from hypothesis import settings

# The property tests draw the same examples on every run, so that a CI failure is a change in
# the code, never the luck of the draw, and can be reproduced; HYPOTHESIS_PROFILE=explore
# searches afresh (run it when changing a kernel, and pin what it finds with @example).
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
