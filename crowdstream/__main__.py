import sys

from crowdstream.cli import main

sys.exit(main())
