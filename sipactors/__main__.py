import sys

from sipactors.cli import main

sys.exit(main())
