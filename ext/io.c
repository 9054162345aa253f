/* Frame pools and the back-end-independent part of the I/O API. See io.h. */
#include "io.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mem.h"

#define IO_HUGE (2u << 20)

VR_EXPORT int io_pool_init(struct io_pool *p, uint32_t nframes)
{
    *p = (struct io_pool){0};
    if (nframes == 0 || nframes > IO_POOL_MAX_FRAMES)
        return -EINVAL;
    size_t bytes = (size_t)nframes * IO_FRAME_SIZE;
    bytes = (bytes + IO_HUGE - 1) / IO_HUGE * IO_HUGE;
    void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return -ENOMEM;
    madvise(base, bytes, MADV_HUGEPAGE);   /* a hint: fewer TLB misses over the frames */
    p->free = vr_malloc(sizeof(uint32_t) * nframes);
    if (!p->free) {
        munmap(base, bytes);
        return -ENOMEM;
    }
    p->base = base;
    p->bytes = bytes;
    p->nframes = nframes;
    /* frame 0 on top: handed out first */
    for (uint32_t i = 0; i < nframes; i++)
        p->free[i] = nframes - 1 - i;
    p->nfree = nframes;
    return 0;
}

VR_EXPORT void io_pool_fini(struct io_pool *p)
{
    if (p->umem_priv)
        io_xsk_pool_release(p);   /* the kernel lets go of the UMEM before it is unmapped */
    if (p->base)
        munmap(p->base, p->bytes);
    vr_free(p->free);
    *p = (struct io_pool){0};
}

VR_EXPORT void io_close(struct io_port *port, struct io_pool *pool)
{
    if (port->ops && port->ops->close)
        port->ops->close(port, pool);
    else if (port->fd >= 0)
        close(port->fd);
    port->fd = -1;
    port->ops = NULL;
}
