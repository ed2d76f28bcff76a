import os
import threading

import pytest

from llm_client import abandoned


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_the_thread_starts_can_start_its_own():
    # fork copies a held lock as held, with no thread in the child to release it: a child forked
    # while another thread was inside start() must not wait on it for ever
    with abandoned._thread_lock:
        pid = os.fork()
        if pid == 0:
            waiter = threading.Thread(target=abandoned.wait_idle, daemon=True)
            waiter.start()
            waiter.join(timeout=10)
            os._exit(1 if waiter.is_alive() else 0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's start() waited on the parent's lock"
