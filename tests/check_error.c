/* Status codes, error records and exit codes. */
#include <config.h>

#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_sf_log.h>

#include "pnd/error.h"
#include "tests/suites.h"

static int
fail_with_line(int value)
{
    PND_ERROR(PND_EINVAL, "invalid value %d", value);
}

START_TEST(test_error_records_message)
{
    pnd_error_clear();
    ck_assert_int_eq(fail_with_line(7), PND_EINVAL);
    ck_assert_str_eq(pnd_error_message(), "invalid value 7");
    ck_assert_int_eq(pnd_error_status(), PND_EINVAL);
    ck_assert_ptr_nonnull(strstr(pnd_error_location(), "check_error.c:"));
}
END_TEST

START_TEST(test_error_exit_codes)
{
    ck_assert_int_eq(pnd_status_exit_code(PND_OK), 0);
    ck_assert_int_eq(pnd_status_exit_code(PND_EINVAL), 2);
    ck_assert_int_eq(pnd_status_exit_code(PND_EFORMAT), 2);
    ck_assert_int_eq(pnd_status_exit_code(PND_EIO), 1);
    ck_assert_int_eq(pnd_status_exit_code(PND_ENUMERIC), 1);
    ck_assert_int_eq(pnd_status_exit_code(PND_EFAILED), 1);
}
END_TEST

START_TEST(test_error_gsl_handler_no_abort)
{
    gsl_sf_result result;
    int status;

    pnd_error_install_gsl_handler();
    pnd_error_clear();
    status = gsl_sf_log_e(-1.0, &result);    /* domain error */
    ck_assert_int_eq(status, GSL_EDOM);
    ck_assert_int_eq(pnd_error_status(), PND_ENUMERIC);
    ck_assert_ptr_nonnull(strstr(pnd_error_message(), "GSL error"));
}
END_TEST

Suite *
pnd_error_suite(void)
{
    Suite *s = suite_create("error");
    TCase *core = tcase_create("Core");

    tcase_add_test(core, test_error_records_message);
    tcase_add_test(core, test_error_exit_codes);
    tcase_add_test(core, test_error_gsl_handler_no_abort);
    suite_add_tcase(s, core);
    return s;
}
