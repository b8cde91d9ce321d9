/* run.h — `kiln run FILE...`: cells from files, outputs printed as a notebook shows them. */
#ifndef KILN_RUN_H
#define KILN_RUN_H

/* argv[0] is "run". Returns 0 when every cell ran, 1 after an error, 2 for usage. */
int kn_run_main(int argc, char **argv);

#endif
