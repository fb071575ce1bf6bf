import sys

from posedistill.cli import main

sys.exit(main())
