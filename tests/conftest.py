"""Suite-wide settings: property tests draw the same examples on every run (seeded, no example
database), so a run is reproducible and a failure is never one unlucky draw in CI."""

from hypothesis import settings

settings.register_profile("reproducible", derandomize=True, database=None)
settings.load_profile("reproducible")
