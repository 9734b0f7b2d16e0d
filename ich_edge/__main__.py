import sys

from ich_edge.cli import main

sys.exit(main())
