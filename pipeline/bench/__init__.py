"""Benchmarks (`make bench`): the build against a bare loop (`build`), alignment scoring (`scoring`), the
curriculum loader (`loader`)."""
