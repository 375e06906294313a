from recipes._quiet import drop_log_lines

# What TensorFlow 2.21 writes to stderr on a CPU machine, and Python
# warnings around it.
STDERR = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796339375.932086   19128 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1796339403.245923   19822 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.
W0000 00:00:1796339403.245923   19822 some.cc:12] a warning
E0000 00:00:1796339436.104092   19822 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)
/x/y.py:7: UserWarning: visible
  warnings.warn('visible')
"""  # noqa: E501
LINES = STDERR.splitlines(keepends=True)
PYTHON = LINES[-2:]


def test_drops_records_below_the_level_with_their_continuations():
    assert drop_log_lines(STDERR, 0) == STDERR
    assert drop_log_lines(STDERR, 1) == "".join(
        [LINES[0], LINES[4], LINES[5], *PYTHON])
    assert drop_log_lines(STDERR, 2) == "".join([LINES[5], *PYTHON])
    assert drop_log_lines(STDERR, 3) == "".join(PYTHON)
