/* AF_XDP back-end, the XDP program: io_xsk_attach loads ext/xdp_tunnel.bpf.c's
 * object with libxdp and attaches it (native, else generic SKB mode); a small
 * registry keeps it per device for io_xsk_open (its xsks_map) and
 * io_xsk_detach. Control thread; xsk_lock guards the registry. */
#include "io_xsk_priv.h"

static struct xsk_dev xsk_devs[XSK_MAX_DEVS];
pthread_mutex_t xsk_lock = PTHREAD_MUTEX_INITIALIZER;

struct xsk_dev *xsk_dev_find(const char *ifname)
{
    for (int i = 0; i < XSK_MAX_DEVS; i++)
        if (xsk_devs[i].prog && strcmp(xsk_devs[i].ifname, ifname) == 0)
            return &xsk_devs[i];
    return NULL;
}

/* libxdp / libbpf messages while attaching: kept (the tail of the verifier
 * log ends an error message) instead of printed. Under xsk_lock. */
static char xsk_log[512];
static size_t xsk_log_len;

static void xsk_log_add(const char *fmt, va_list ap)
{
    char line[256];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n <= 0)
        return;
    size_t len = strlen(line);
    if (len >= sizeof xsk_log) {
        memcpy(xsk_log, line + len - (sizeof xsk_log - 1), sizeof xsk_log - 1);
        xsk_log_len = sizeof xsk_log - 1;
    } else {
        if (xsk_log_len + len >= sizeof xsk_log) {   /* keep the tail */
            size_t drop = xsk_log_len + len - (sizeof xsk_log - 1);
            memmove(xsk_log, xsk_log + drop, xsk_log_len - drop);
            xsk_log_len -= drop;
        }
        memcpy(xsk_log + xsk_log_len, line, len);
        xsk_log_len += len;
    }
    xsk_log[xsk_log_len] = 0;
}

static int xsk_log_xdp(enum libxdp_print_level level, const char *fmt, va_list ap)
{
    if (level == LIBXDP_WARN)
        xsk_log_add(fmt, ap);
    return 0;
}

static int xsk_log_bpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    if (level == LIBBPF_WARN)
        xsk_log_add(fmt, ap);
    return 0;
}

/* The last line of the captured log, trimmed (a verifier rejection ends with its reason). */
static const char *xsk_log_tail(void)
{
    while (xsk_log_len && (xsk_log[xsk_log_len - 1] == '\n' || xsk_log[xsk_log_len - 1] == ' '))
        xsk_log[--xsk_log_len] = 0;
    char *nl = strrchr(xsk_log, '\n');
    return nl ? nl + 1 : xsk_log;
}

static const char *xsk_mode_name(int mode)
{
    return mode == IO_XSK_MODE_SKB ? "skb" : "native";
}

/* Open the object and attach it in one mode: 0 or a negative errno, with
 * *final set when trying the other mode is pointless (the object is
 * unusable, or someone else's program holds the device). */
static int xsk_attach_mode(const char *obj, int ifindex, int mode, struct xdp_program **out, char *why, size_t whylen,
                           int *final)
{
    struct xdp_program *prog = xdp_program__open_file(obj, "xdp", NULL);
    long e = libxdp_get_error(prog);
    if (e) {
        snprintf(why, whylen, "cannot open %s: %s", obj, strerror((int)-e));
        *final = 1;
        return (int)e;
    }
    struct bpf_object *bo = xdp_program__bpf_obj(prog);
    if (!bo || !bpf_object__find_map_by_name(bo, "xsks_map")) {
        xdp_program__close(prog);
        snprintf(why, whylen, "%s has no map named xsks_map", obj);
        *final = 1;
        return -ENOENT;
    }
    xsk_log_len = 0;
    xsk_log[0] = 0;
    int rc = xdp_program__attach(prog, ifindex, mode == IO_XSK_MODE_SKB ? XDP_MODE_SKB : XDP_MODE_NATIVE, 0);
    if (rc == -EBUSY || rc == -EEXIST) {
        /* A program is on the device already (libxdp: EBUSY when it is not
         * its dispatcher). One of ours left by a process that died is
         * removed; anything else is someone else's. */
        struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(ifindex);
        if (!libxdp_get_error(mp) && mp) {
            struct xdp_program *main = xdp_multiprog__main_prog(mp);
            const char *name = main ? xdp_program__name(main) : NULL;
            if (xdp_multiprog__is_legacy(mp) && name && strcmp(name, xdp_program__name(prog)) == 0 &&
                xdp_multiprog__detach(mp) == 0)
                rc = xdp_program__attach(prog, ifindex, mode == IO_XSK_MODE_SKB ? XDP_MODE_SKB : XDP_MODE_NATIVE, 0);
            else if (name) {
                snprintf(why, whylen, "another XDP program (%s) is attached", name);
                *final = 1;
                rc = -EEXIST;
            }
            xdp_multiprog__close(mp);
        }
    }
    if (rc) {
        if (!*why) {
            const char *tail = xsk_log_tail();
            snprintf(why, whylen, "%s%s%s", strerror(-rc), *tail ? " - " : "", tail);
        }
        xdp_program__close(prog);
        return rc;
    }
    *out = prog;
    return 0;
}

VR_EXPORT int io_xsk_attach(const char *ifname, const char *xdp_obj, int skb_mode, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!xsk_check_ifname(ifname))
        return xsk_fail(err, errlen, -EINVAL, "ifname %s: invalid device name", ifname ? ifname : "(null)");
    if (!xdp_obj || !*xdp_obj)
        return xsk_fail(err, errlen, -EINVAL, "ifname %s: no XDP object file given", ifname);
    if (access(xdp_obj, R_OK) != 0) {
        int e = errno;
        return xsk_fail(err, errlen, -e, "ifname %s: XDP object %s: %s", ifname, xdp_obj, strerror(e));
    }
    int ifindex = (int)if_nametoindex(ifname);
    if (!ifindex)
        return xsk_fail(err, errlen, -ENODEV, "ifname %s: no such device", ifname);

    pthread_mutex_lock(&xsk_lock);
    int rc;
    struct xsk_dev *d = xsk_dev_find(ifname);
    if (d && d->ifindex == ifindex) {
        rc = xsk_fail(err, errlen, -EEXIST, "ifname %s: XDP program already attached (%s mode); detach first",
                      ifname, xsk_mode_name(d->mode));
        goto out;
    }
    if (d) {   /* the device was deleted and recreated: the kernel dropped the program with it */
        xdp_program__close(d->prog);
        memset(d, 0, sizeof *d);
    }
    for (d = NULL, rc = 0; rc < XSK_MAX_DEVS; rc++)
        if (!xsk_devs[rc].prog) {
            d = &xsk_devs[rc];
            break;
        }
    if (!d) {
        rc = xsk_fail(err, errlen, -ENOSPC, "ifname %s: XDP programs attached to %d devices already", ifname,
                      XSK_MAX_DEVS);
        goto out;
    }

    libxdp_print_fn_t old_xdp = libxdp_set_print(xsk_log_xdp);
    libbpf_print_fn_t old_bpf = libbpf_set_print(xsk_log_bpf);
    struct xdp_program *prog = NULL;
    char why_native[200] = "", why_skb[200] = "";
    int mode = IO_XSK_MODE_NATIVE, final = 0;
    rc = -EOPNOTSUPP;
    if (!skb_mode)
        rc = xsk_attach_mode(xdp_obj, ifindex, IO_XSK_MODE_NATIVE, &prog, why_native, sizeof why_native, &final);
    if (rc && !final) {
        mode = IO_XSK_MODE_SKB;
        rc = xsk_attach_mode(xdp_obj, ifindex, IO_XSK_MODE_SKB, &prog, why_skb, sizeof why_skb, &final);
    }
    libbpf_set_print(old_bpf);
    libxdp_set_print(old_xdp);
    if (rc) {
        if (skb_mode)
            xsk_fail(err, errlen, rc, "ifname %s: XDP program attach failed (skb mode): %s", ifname, why_skb);
        else if (*why_skb)
            xsk_fail(err, errlen, rc, "ifname %s: XDP program attach failed: native: %s; skb: %s", ifname,
                     why_native, why_skb);
        else
            xsk_fail(err, errlen, rc, "ifname %s: XDP program attach failed: %s", ifname, why_native);
        goto out;
    }
    struct bpf_map *map = bpf_object__find_map_by_name(xdp_program__bpf_obj(prog), "xsks_map");
    int map_fd = map ? bpf_map__fd(map) : -1;
    if (map_fd < 0) {
        xdp_program__detach(prog, ifindex, mode == IO_XSK_MODE_SKB ? XDP_MODE_SKB : XDP_MODE_NATIVE, 0);
        xdp_program__close(prog);
        rc = xsk_fail(err, errlen, -ENOENT, "ifname %s: xsks_map not loaded", ifname);
        goto out;
    }
    memcpy(d->ifname, ifname, strlen(ifname) + 1);
    d->ifindex = ifindex;
    d->mode = mode;
    d->map_fd = map_fd;
    d->prog = prog;
    rc = 0;
out:
    pthread_mutex_unlock(&xsk_lock);
    return rc;
}

VR_EXPORT int io_xsk_detach(const char *ifname)
{
    if (!xsk_check_ifname(ifname))
        return -ENOENT;
    pthread_mutex_lock(&xsk_lock);
    struct xsk_dev *d = xsk_dev_find(ifname);
    int rc = -ENOENT;
    if (d) {
        /* Only when the device is still the one we attached to (a new device
         * of the same name never had our program). */
        if ((int)if_nametoindex(ifname) == d->ifindex)
            xdp_program__detach(d->prog, d->ifindex, d->mode == IO_XSK_MODE_SKB ? XDP_MODE_SKB : XDP_MODE_NATIVE,
                                0);
        xdp_program__close(d->prog);   /* closes xsks_map: its sockets stop receiving */
        memset(d, 0, sizeof *d);
        rc = 0;
    }
    pthread_mutex_unlock(&xsk_lock);
    return rc;
}

VR_EXPORT int io_xsk_mode(const char *ifname)
{
    if (!xsk_check_ifname(ifname))
        return -ENOENT;
    pthread_mutex_lock(&xsk_lock);
    struct xsk_dev *d = xsk_dev_find(ifname);
    int rc = d ? d->mode : -ENOENT;
    pthread_mutex_unlock(&xsk_lock);
    return rc;
}

/* Remove a socket's xsks_map entry (when its device still has our program). */
void xsk_map_remove(const struct xsk_sock *s)
{
    pthread_mutex_lock(&xsk_lock);
    struct xsk_dev *d = xsk_dev_find(s->ifname);
    if (d && d->ifindex == s->ifindex) {
        uint32_t key = s->queue;
        bpf_map_delete_elem(d->map_fd, &key);
    }
    pthread_mutex_unlock(&xsk_lock);
}
