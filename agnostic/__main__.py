import sys

from agnostic.cli import main

sys.exit(main())
