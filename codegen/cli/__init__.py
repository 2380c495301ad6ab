"""The ``grukit`` command line: the only place that parses arguments; nothing imports it. It also runs
``grukit verify FOLDER``'s class: one bounded process per submission, and the table of their rows.

May import: anything in grukit. Each command module is imported only when its command runs, so that
``grukit --help`` starts as fast as NumPy."""
