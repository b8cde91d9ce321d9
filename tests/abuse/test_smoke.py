"""The harness itself: a plain error leaves the kernel and the sentinel as they were."""
from abuse import AbuseCase


class TestHarness(AbuseCase):
    def test_plain_error_keeps_state(self):
        r = self.attack("undefined_name + 1")
        self.assert_error(r, "NameError", "undefined_name")
