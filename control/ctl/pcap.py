"""pcap files (the classic libpcap format, nanosecond timestamps) that tcpdump, tshark and scapy read.

    with PcapWriter("out.pcap") as w:
        w.write(ts_ns, frame, wire_len)
"""
from __future__ import annotations

import struct

MAGIC_NS = 0xA1B23C4D          # nanosecond-resolution timestamps
LINKTYPE_ETHERNET = 1


class PcapWriter:
    def __init__(self, path: str, snaplen: int = 65535):
        self.f = open(path, "wb")
        self.count = 0
        self.f.write(struct.pack("<IHHiIII", MAGIC_NS, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))

    def write(self, ts_ns: int, frame: bytes, wire_len: int | None = None) -> None:
        self.f.write(struct.pack("<IIII", ts_ns // 1_000_000_000, ts_ns % 1_000_000_000, len(frame),
                                 wire_len if wire_len is not None else len(frame)))
        self.f.write(frame)
        self.count += 1

    def close(self) -> None:
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
