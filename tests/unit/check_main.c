/* Shared main() of the Check suites: TAP on stdout, exit 1 on any failure. */
#include <stdlib.h>

#include "check_main.h"

int main(void)
{
    SRunner *runner = srunner_create(ptth_test_suite());
    srunner_set_tap(runner, "-");
    srunner_run_all(runner, CK_SILENT);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
