"""The torture suite: faults, crashes and bad input at scale (issue 7).

Every property is proven twice: at full size under ``@pytest.mark.slow`` (``make torture``)
and scaled down in the default run, so that CI checks the same code paths in seconds.
"""
