"""python -m control.node: the node agent (control/node/agent.py), like `vrouter-agent node`."""
import sys

from control.node.agent import main

sys.exit(main(prog="python -m control.node"))
