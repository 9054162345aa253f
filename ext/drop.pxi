# Drop-reason names from the one C table (ext/drop.def); index = C enum value.
cimport drop as cdrop


def drop_names():
    """Every drop reason (enum pl_drop), 0 = "none"."""
    return [cdrop.vr_drop_name(i).decode() for i in range(cdrop.PL_DROP__COUNT)]


def pkt_drop_names():
    """The parser's reasons (enum pkt_drop): the first of drop_names()."""
    return drop_names()[:cdrop.PKT_DROP__COUNT]
