import sys

from cosa_guard.cli import main

sys.exit(main())
