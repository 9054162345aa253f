/* The one table of drop-reason names, made from ext/drop.def (see drop.h).
 * Constant data; any thread. */
#include "drop.h"

/* The parser's reasons must come first: the same number in both enums. */
#define PKT_DROP(n, s) _Static_assert((int)PKT_DROP_##n == (int)PL_DROP_##n, "drop.def: parser reason " s " after a pipeline one");
#define PL_DROP(n, s)
#include "drop.def"
#undef PKT_DROP
#undef PL_DROP

static const char *const drop_names[PL_DROP__COUNT] = {
#define PKT_DROP(n, s) [PL_DROP_##n] = s,
#define PL_DROP(n, s) [PL_DROP_##n] = s,
#include "drop.def"
#undef PKT_DROP
#undef PL_DROP
};

VR_EXPORT const char *vr_drop_name(int reason)
{
    return reason >= 0 && reason < PL_DROP__COUNT ? drop_names[reason] : "unknown";
}
