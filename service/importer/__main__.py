"""`python -m service.importer`: the same as `corel-import`."""

import sys

from service.importer.cli import main

sys.exit(main())
