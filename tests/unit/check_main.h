/*
 * check_main.h: every Check suite binary defines ptth_test_suite() and links
 * check_main.c, which runs it in fork mode and prints TAP on stdout so meson
 * and tests/run-summary count each test case.
 */
#ifndef PTTH_CHECK_MAIN_H
#define PTTH_CHECK_MAIN_H

#include <check.h>

Suite *ptth_test_suite(void);

#endif
