"""jupyter_kernel_test against the Kiln kernel, with every test attribute turned on
that Kiln can honour (see docs/kernel.md for the ones it cannot)."""
import unittest

import jupyter_kernel_test as jkt

from kiln_testing import KERNEL_NAME


class KilnKernelTests(jkt.KernelTests):
    kernel_name = KERNEL_NAME
    language_name = "kiln"
    file_extension = ".kn"

    code_hello_world = 'printf("hello, world\\n");'
    code_stderr = 'fprintf(stderr, "oops\\n");'

    completion_samples = [
        {"text": "zeros_l", "matches": {"zeros_like"}},
        {"text": "printf"},
    ]
    complete_code_samples = ["int x = 1;", "1 + 2", "for (int i = 0; i < 3; i++) { print(i); }"]
    incomplete_code_samples = ["for (int i = 0; i < 3; i++) {", "int f(int a) {", "print(1,"]
    invalid_code_samples = ["int x = 1; }", "print(1))"]

    code_generate_error = "this_name_is_not_defined + 1"
    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": "1 + 2", "result": "3"},
        {"code": "10 - 4", "result": "6"},
    ]
    code_display_data = [{"code": "display(zeros(2));", "mime": "text/plain"}]
    code_clear_output = "clear_output();"

    supported_history_operations = ("tail", "range", "search")
    code_history_pattern = "6*7"

    code_inspect_sample = "zeros"

    # code_page_something stays off: Kiln sends no pager payloads (help goes to the
    # inspect request and to `%whos` output instead).


class KilnIopubWelcomeTests(jkt.IopubWelcomeTests):
    kernel_name = KERNEL_NAME
    support_iopub_welcome = True


if __name__ == "__main__":
    unittest.main()
