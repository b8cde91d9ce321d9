/* fileopen.c — opening user-named files without blocking, regular files only (see
 * fileopen.h). */
#include "engine/io/fileopen.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What a file of this mode is, for messages. */
static const char *file_kind(mode_t m)
{
    if (S_ISFIFO(m))
        return "a FIFO (named pipe)";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISCHR(m))
        return "a character device";
    return "not a regular file";
}

static int refuse(const char *path, mode_t m, int for_write, const char *op, eng_error *err)
{
    return eng_fail(err, ERR_IO, "%s: '%s' is %s, not a regular file: %s only %s regular files",
                    op, path, file_kind(m), op, for_write ? "writes" : "reads");
}

int eng_file_open_fd(const char *path, int for_write, const char *op, eng_error *err)
{
    int flags = (for_write ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY) | O_NONBLOCK | O_CLOEXEC;
    struct stat st;
    int fd, fl;
    if (!path || !*path) {
        eng_fail(err, ERR_IO, "%s: the file name is empty", op);
        return -1;
    }
    fd = open(path, flags, 0666);
    if (fd < 0) {
        int e = errno;
        /* a FIFO without a reader refuses a non-blocking writer (ENXIO): say what it is */
        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !(for_write && S_ISCHR(st.st_mode)))
            refuse(path, st.st_mode, for_write, op, err);
        else
            eng_fail(err, ERR_IO, "%s: cannot %s '%s': %s", op, for_write ? "create" : "open",
                     path, strerror(e));
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        eng_fail(err, ERR_IO, "%s: cannot stat '%s': %s", op, path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) && !(for_write && S_ISCHR(st.st_mode))) {
        refuse(path, st.st_mode, for_write, op, err);
        close(fd);
        return -1;
    }
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        eng_fail(err, ERR_IO, "%s: cannot use '%s': %s", op, path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

FILE *eng_file_open(const char *path, const char *mode, const char *op, eng_error *err)
{
    int for_write = mode[0] == 'w';
    int fd = eng_file_open_fd(path, for_write, op, err);
    FILE *f;
    if (fd < 0)
        return NULL;
    f = fdopen(fd, for_write ? "wb" : "rb");
    if (!f) {
        eng_fail(err, ERR_MEMORY, "%s: out of memory opening '%s'", op, path);
        close(fd);
    }
    return f;
}
