"""Test support shipped with the package: the scenario harness."""
