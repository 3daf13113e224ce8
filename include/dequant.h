/*
 * dequant.h - `qnext dequant`: write a plain Hugging Face copy of an
 * AutoRound checkpoint, every quantized linear layer (qweight, qzeros,
 * scales) replaced by its dequantized weight [n_out][n_in] in BF16, F16 or
 * F32, for tools that read float checkpoints only (llama.cpp's
 * convert_hf_to_gguf.py).  Main thread of the CLI only.
 */
#ifndef QNEXT_DEQUANT_H
#define QNEXT_DEQUANT_H

/* Entry point for `qnext dequant ARGS`; returns the process exit status. */
int dequant_main(int argc, char **argv);

#endif
