import os

import pytest
from hypothesis import settings

# Gradient checks are cheap on tiny arrays; CI gets a few more examples than a local run.
settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session", autouse=True)
def _own_npnet_cache(tmp_path_factory):
    """npnet's cache (MNIST checksums) in a folder of the test session, not the user's."""
    before = os.environ.get("NPNET_CACHE")
    os.environ["NPNET_CACHE"] = str(tmp_path_factory.mktemp("npnet-cache"))
    yield
    if before is None:
        del os.environ["NPNET_CACHE"]
    else:
        os.environ["NPNET_CACHE"] = before
