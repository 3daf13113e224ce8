/*
 * which-model.h - `qnext which-model [-m DIR]`: print the model directory qnext would
 * use.  Main thread only.
 */
#ifndef QNEXT_WHICH_MODEL_H
#define QNEXT_WHICH_MODEL_H

/* Entry point for `qnext which-model ARGS`; returns the process exit status. */
int which_model_main(int argc, char **argv);

#endif
