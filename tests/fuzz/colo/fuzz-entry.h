/*
 * The entry point libFuzzer calls in each COLO fuzz target, declared once
 * so that the targets build with -Wmissing-prototypes.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef TESTS_FUZZ_COLO_FUZZ_ENTRY_H
#define TESTS_FUZZ_COLO_FUZZ_ENTRY_H

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
