"""Fixtures for the whole suite; the helpers they use live in kit_helpers.py (importable by name)."""

from kit_helpers import healthy_platform, platform, test_secrets, unused_port  # noqa: F401


import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Hypothesis fails an example that takes over 200 ms by default: a timing assertion, which a busy machine
# breaks (a judge call took 429 ms under a second suite's load, then 0.25 ms). The suite asserts no timings.
settings.register_profile("netra-nb", deadline=None)
settings.load_profile("netra-nb")

from netra_nb.redact import forget_secrets, known_secrets  # noqa: E402


@pytest.fixture(autouse=True)
def _secrets_registered_by_a_test_stay_in_it():
    """The redactor's registry is process-wide: what one test registers (Hypothesis draws secrets from the
    kit's own words: 'tool_executing', '...ectivity') must not blank out another test's output."""
    before = known_secrets()
    yield
    forget_secrets(known_secrets() - before)
