/* Drop reasons: the enums generated from ext/drop.def and the one table of
 * their names (ext/drop.c). enum pkt_drop is what the parser can say (a
 * prefix of the list); enum pl_drop is every reason, the same numbers.
 * Thread-safety: constants only; any thread. */
#ifndef VR_DROP_H
#define VR_DROP_H

#include "vr_common.h"

enum pkt_drop {
#define PKT_DROP(n, s) PKT_DROP_##n,
#define PL_DROP(n, s)
#include "drop.def"
#undef PKT_DROP
#undef PL_DROP
    PKT_DROP__COUNT
};

enum pl_drop {
#define PKT_DROP(n, s) PL_DROP_##n,
#define PL_DROP(n, s) PL_DROP_##n,
#include "drop.def"
#undef PKT_DROP
#undef PL_DROP
    PL_DROP__COUNT
};

/* The reason's name ("unknown" out of range). */
VR_EXPORT const char *vr_drop_name(int reason);

#endif
