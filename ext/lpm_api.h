/* Constants shared by the IPv4 and IPv6 LPM tables (lpm4.h, lpm6.h). */
#ifndef VR_LPM_API_H
#define VR_LPM_API_H

#define LPM_NO_ROUTE 0xFFFFFFFFu /* lookup result when no route covers the key */
#define LPM_MAX_NH 0xFFFFFFFEu   /* next-hop ids are 0..LPM_MAX_NH */
#define LPM_MAX_VRF 65535u       /* VRF ids are 0..LPM_MAX_VRF */

/* Bulk lookup variants; every one gives identical answers (tests check). */
enum lpm_impl {
    LPM_IMPL_AUTO = 0,           /* the variant measured fastest for the family */
    LPM_IMPL_SCALAR = 1,         /* one key after the other */
    LPM_IMPL_BATCH = 2,          /* scalar walk with prefetches 8 and 16 keys ahead */
    LPM_IMPL_SCALAR_PORTABLE = 3, /* scalar, no popcnt instruction */
    LPM_IMPL_BATCH_PORTABLE = 4,  /* batch, no popcnt instruction */
};

#endif
