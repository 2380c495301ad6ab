"""The ``grukit`` command line: the only place that parses arguments; nothing imports it.

May import: anything in grukit. Each command module is imported only when its command runs, so that
``grukit --help`` starts as fast as NumPy."""
