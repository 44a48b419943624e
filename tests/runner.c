/* Runs every module's Check suite; exit status 0 only when all pass.
 * CK_RUN_SUITE=name and CK_RUN_CASE=name select a part, as Check defines. */
#include <config.h>

#include <stdlib.h>

#include "tests/suites.h"

/* One constructor per module; add a module's suite here and in suites.h. */
static Suite *(*const suites[])(void) = {
    pnd_error_suite,
    pnd_rng_suite,
    pnd_config_suite,
    pnd_mask_suite,
    pnd_sim_suite,
    pnd_analysis_suite,
    pnd_train_suite,
    pnd_report_suite,
};

const char *
pnd_test_data_dir(void)
{
    const char *dir = getenv("PND_TEST_DATA");

    return dir && dir[0] ? dir : "tests/data";
}

int
main(void)
{
    SRunner *runner = srunner_create(NULL);
    int failed;

    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++)
        srunner_add_suite(runner, suites[i]());
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
