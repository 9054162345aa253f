"""python -m control.agent: the agent process (control/agent/agent.py)."""
import sys

from control.agent.agent import main

sys.exit(main())
