/* One Check suite per module; tests/runner.c runs them all. */
#ifndef PND_TESTS_SUITES_H
#define PND_TESTS_SUITES_H

#include <check.h>

Suite *pnd_error_suite(void);
Suite *pnd_rng_suite(void);
Suite *pnd_config_suite(void);
Suite *pnd_mask_suite(void);
Suite *pnd_sim_suite(void);
Suite *pnd_analysis_suite(void);
Suite *pnd_train_suite(void);
Suite *pnd_report_suite(void);

/* Directory of the committed test fixtures (PND_TEST_DATA, set by make
 * check), or "tests/data" when run by hand from the source tree. */
const char *pnd_test_data_dir(void);

#endif
