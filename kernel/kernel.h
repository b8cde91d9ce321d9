/* kernel.h — the Jupyter kernel process: `kiln kernel -f CONNECTION_FILE`.
 *
 * kn_kernel_main reads the connection file, binds the five sockets, starts the
 * heartbeat, control and IOPub threads, and serves shell requests on the calling
 * thread until a shutdown_request arrives. It owns the engine session for its whole
 * life. See docs/kernel.md for the threads and the path of a request.
 */
#ifndef KILN_KERNEL_H
#define KILN_KERNEL_H

/* argv holds "-f FILE" (or "--f=FILE", "-f=FILE") somewhere after argv[0]; anything
 * else is ignored. Returns the process exit status: 0 after a clean shutdown, 2 for a
 * usage or connection-file error, 1 when sockets or threads could not be set up. */
int kn_kernel_main(int argc, char **argv);

#endif
