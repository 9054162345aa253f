"""The version of the vrouter distribution (vrouter, control): one place, read by setup.py and every
command's --version."""
__version__ = "0.2.0"
