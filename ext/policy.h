/* Policy: ordered rule lists attached to a VRF (network policy) or a vif
 * (security group), compiled by the writer into a read-only structure that
 * answers first-match queries on a flow miss.
 *
 * Compiled form: protocol -> class (each protocol named by a rule gets its
 * own class, the rest share one); per class the destination-port space is cut
 * into elementary intervals at every rule boundary, and each interval holds
 * the ascending indices of the rules that can match there. A query is a table
 * lookup, a binary search over interval starts, then prefix/sport/direction
 * tests over that short list in rule order: the first hit is the lowest
 * matching rule index, exactly as a linear first-match scan would find.
 *
 * Thread-safety contract:
 *  - readers (workers; Python inside rcu_read_enter/exit): pol_eval,
 *    pol_eval_bulk, pol_generation, pol_flow_reval. No locks; they must be
 *    online in the table's RCU domain.
 *  - writer (control thread only, one at a time): pol_table_create/destroy,
 *    pol_list_build/free, pol_attach. pol_attach publishes a list with one
 *    atomic store, then bumps the generation (release), and hands the old
 *    list to rcu_defer. Readers load the generation before the lists, so a
 *    flow stamped with the new generation was decided by the new lists.
 */
#ifndef VR_POLICY_H
#define VR_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "flow.h"
#include "rcu.h"

#define POL_MAX_RULES 65536
#define POL_RULE_NONE 0xffffffffu      /* no list applied */
#define POL_RULE_DEFAULT 0xfffffffeu   /* the list's default action decided */
#define POL_PROTO_ANY 0xffff

enum { POL_PASS = FLOW_ACT_FORWARD, POL_DENY = FLOW_ACT_DROP };
enum { POL_DIR_IN = 1, POL_DIR_OUT = 2, POL_DIR_BOTH = 3 };
enum { POL_ATTACH_VRF = 0, POL_ATTACH_VIF = 1 };

/* A rule as the writer hands it over. Addresses are 16 bytes, IPv4 in the
 * mapped form with the prefix length counted in 128-bit space (v4 /p -> 96+p). */
struct pol_rule {
    uint8_t src[16];
    uint8_t dst[16];
    uint8_t src_len;
    uint8_t dst_len;
    uint8_t family;       /* 0: any family (both prefixes "any"), 4 or 6 */
    uint8_t dir;          /* POL_DIR_* */
    uint16_t proto;       /* 0..255 or POL_PROTO_ANY */
    uint16_t sport_lo, sport_hi;
    uint16_t dport_lo, dport_hi;
    uint8_t action;       /* POL_PASS / POL_DENY */
    uint8_t log;
    uint32_t id;
};

struct pol_result {
    uint32_t rule_id;
    uint8_t action;
    uint8_t log;
    uint16_t pad;
};

struct pol_list;
struct pol_table;

/* Writer. Returns 0 or -EINVAL (bad rule, *bad_rule = its index) / -ENOMEM. */
int pol_list_build(const struct pol_rule *rules, uint32_t n, uint8_t default_action,
                   struct pol_list **out, uint32_t *bad_rule);
void pol_list_free(void *list);
size_t pol_list_memory(const struct pol_list *l);
int pol_table_create(struct rcu_domain *d, struct pol_table **out);
void pol_table_destroy(struct pol_table *pt);   /* no reader may be online */
/* Attach (list != NULL) or detach (NULL) the list of a VRF or vif. The table
 * owns the list from then on, even on error (it is freed). 0 / -ENOMEM. */
int pol_attach(struct pol_table *pt, int kind, uint16_t id, struct pol_list *list);

/* Readers. */
uint32_t pol_generation(const struct pol_table *pt);
/* First match in one list (scalar reference: pol_list_eval_linear). */
int pol_list_eval(const struct pol_list *l, const struct flow_key *k, int dir, struct pol_result *r);
int pol_list_eval_linear(const struct pol_list *l, const struct flow_key *k, int dir, struct pol_result *r);
/* The vif's security group first (a deny ends it), then the VRF's policy. */
int pol_eval(const struct pol_table *pt, const struct flow_key *k, uint16_t vif, int dir,
             struct pol_result *r);
/* The vif's own list only (no VRF policy); no list: pass, POL_RULE_NONE. */
int pol_eval_vif(const struct pol_table *pt, const struct flow_key *k, uint16_t vif, int dir,
                 struct pol_result *r);
void pol_eval_bulk(const struct pol_table *pt, const struct flow_key *keys, const uint16_t *vifs,
                   int dir, uint32_t n, struct pol_result *res, int linear);
/* flow_revalidator callback: ctx = struct pol_table *, direction IN. */
int pol_flow_reval(void *ctx, const struct flow_key *k, uint16_t vif, uint32_t *rule_id);

#endif
