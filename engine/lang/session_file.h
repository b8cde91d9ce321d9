/* session_file.h — %save PATH and %load PATH: the whole session in one .npz file.
 *
 * The file is a zip archive of stored (uncompressed) members: one NAME.npy per tensor
 * global, which NumPy reads with np.load(PATH)["NAME"], and __kiln__.json, a manifest
 * with every global's declared type, the scalars, strings, dtypes and tuples, the source
 * of every user function and of every __device__/__global__ kernel, the optimisers
 * (their handles, hyperparameters, step counts; their moment buffers as .npy members)
 * and the RNG state. docs/session-file.md describes the format.
 * Loading restores into the given session: names in the file replace those present.
 */
#ifndef KILN_SESSION_FILE_H
#define KILN_SESSION_FILE_H

#include <stddef.h>
#include "engine/base/error.h"

struct eng_session;

/* 0, or -1 with err filled; *summary (malloc'ed, may be NULL) says what was done */
int eng_session_save(struct eng_session *s, const char *path, char **summary, eng_error *err);
int eng_session_load(struct eng_session *s, const char *path, char **summary, eng_error *err);

/* the text of fn's definition in its cell (*start into the cell's text, *len bytes): 0,
 * or -1 when its closing brace cannot be found */
struct eng_func;
int eng_func_text(const struct eng_func *fn, const char **start, size_t *len);

#endif
