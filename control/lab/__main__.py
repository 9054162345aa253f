"""python -m control.lab: the demo (control/lab/demo.py); `vrouter demo` forwards here."""
import sys

from control.lab.demo import main

sys.exit(main())
