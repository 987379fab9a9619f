import os

from hypothesis import settings

# Gradient checks are cheap on tiny arrays; CI gets a few more examples than a local run.
settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
