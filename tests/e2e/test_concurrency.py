"""Four browser sessions at once (captioning, saliency, an attack sweep, style transfer) equal a serial run.

The concurrent pass runs on a server of its own, so nothing it computes can come from a cache the serial
pass filled (saliency maps and FGSM sweeps are cached process-wide); the serial pass runs on the suite's
server, one session after another (the classifier's areas once for both concurrency tests:
``classifier_serial``). Compared: every number the pages draw in their charts (losses, curves,
probabilities; timings excluded) and the captions, to 5 significant digits.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import streamlit_server
from tests.e2e.reliability import (
    ATTACK_SWEEP,
    SALIENCY,
    STYLE,
    Area,
    assert_same_results,
    concurrent_run,
    rss_limit_mb,
    serial_run,
    server_process,
    track_rss,
)

pytestmark = pytest.mark.e2e

CAPTIONING = Area("captioning", "Captioning?img=rocket.jpg&max=12", "Captions ready", ("^Caption$",))
AREAS = [CAPTIONING, SALIENCY, ATTACK_SWEEP, STYLE]


def test_four_sessions_at_once_match_a_serial_run(browser, app_url, server_env, classifier_serial):
    serial = {**classifier_serial, **serial_run([CAPTIONING, STYLE], browser, app_url)}
    with streamlit_server(server_env) as url, track_rss(server_process(url)) as rss:
        concurrent = concurrent_run(AREAS, browser, url)
    assert_same_results(concurrent, serial)
    assert serial["captioning"]["quotes"], "no caption shown"
    assert rss.peak_mb < rss_limit_mb(), f"peak RSS {rss.peak_mb:.0f} MB with four sessions"
