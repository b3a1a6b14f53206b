"""Run the command line: ``python3 -m shmstore_reader ...`` with the
directory that holds this package on the module path, or ``python3
path/to/shmstore_reader ...`` on the directory itself.

Run on the directory, Python executes this file as a script with the
directory first on sys.path and no package, so the package's relative
imports would fail and its modules could be imported as top-level ones.
The directory is then taken off sys.path and loaded as the package
`shmstore_reader`, whatever the directory is called, before its command
line runs.
"""

import sys

if __package__:
    from .cli import main
else:
    import importlib.util
    import os

    here = os.path.dirname(os.path.realpath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != here]
    spec = importlib.util.spec_from_file_location(
        "shmstore_reader", os.path.join(here, "__init__.py"), submodule_search_locations=[here]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["shmstore_reader"] = package
    spec.loader.exec_module(package)
    from shmstore_reader.cli import main

if __name__ == "__main__":
    sys.exit(main())
