"""python -m control.ctl: vrouter-ctl."""
import sys

from control.ctl.cli import main

sys.exit(main())
