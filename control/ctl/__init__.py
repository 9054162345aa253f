"""vrouter-ctl: the operator's command line (cli.py) and its pcap writer (pcap.py); it talks to a
running vrouter through control.client only."""
