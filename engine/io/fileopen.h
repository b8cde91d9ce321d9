/* fileopen.h — the one way the engine opens a file named by the user.
 *
 * load_npy, load_idx / load_mnist, save_npy, %save and %load open their files here.
 * The open itself never blocks (O_NONBLOCK, cleared afterwards: a FIFO with no writer,
 * or no reader, would otherwise hang the cell where no interrupt reaches), and the
 * file must be what a read or a write of a whole file expects: a regular file to read;
 * a regular file or a character device (/dev/null) to write. Anything else (a FIFO, a
 * socket, a directory, a block device) is refused with an IOError naming the path and
 * what it is. Descriptors are close-on-exec (the kernel starts compilers).
 */
#ifndef KILN_FILEOPEN_H
#define KILN_FILEOPEN_H

#include <stdio.h>

#include "engine/base/error.h"

/* Opens path for reading ("rb") or writing ("wb": created or truncated, mode 0666 less
 * the umask). op names the operation in errors ("load_npy", "%save"). Returns the
 * file, or NULL with err filled. */
FILE *eng_file_open(const char *path, const char *mode, const char *op, eng_error *err);

/* The same as a file descriptor (for gzdopen and the like); -1 with err filled. */
int eng_file_open_fd(const char *path, int for_write, const char *op, eng_error *err);

#endif
