"""``python -m grukit.codegen.cli``: the ``grukit`` command."""
import sys

from grukit.codegen.cli.main import main

sys.exit(main())
