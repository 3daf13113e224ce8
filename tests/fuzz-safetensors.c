/*
 * fuzz-safetensors.c - libFuzzer harness for the safetensors header parser
 * (st_parse_check).  Each input is tried twice: as a whole file, and as a
 * bare JSON header given a correct length prefix and a small data area, so
 * the fuzzer need not guess the 8-byte length to reach the validation code.
 * Built by `make fuzz`; single-threaded.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "util.h"

/* Bytes of zeros after the header in the second form. */
#define DATA_LEN 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *cause = NULL;
	size_t n = 0;
	uint8_t *file;

	if (st_parse_check(data, size, "fuzz", &n, &cause) != 0 && cause == NULL)
		abort(); /* a failure must say why */
	free(cause);
	cause = NULL;

	file = xcalloc(1, 8 + size + DATA_LEN);
	for (int i = 0; i < 8; i++)
		file[i] = (uint8_t)((uint64_t)size >> (8 * i));
	if (size > 0)
		memcpy(file + 8, data, size);
	if (st_parse_check(file, 8 + size + DATA_LEN, "fuzz", &n, &cause) != 0 && cause == NULL)
		abort();
	free(cause);
	free(file);
	return 0;
}
